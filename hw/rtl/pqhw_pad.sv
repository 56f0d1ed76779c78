// Feature-map padding (FINN FMPadding): an IMG_H x IMG_W image of CH channels in NHWC order, SIMD channels a
// beat, goes out as the (PAD_T + IMG_H + PAD_B) x (PAD_L + IMG_W + PAD_R) image with PAD_T rows above, PAD_B
// below, PAD_L columns left and PAD_R right, every padded element equal to VALUE (FINN pads with 0).
//
// One output beat a cycle: a counter walks the output image; on a padded pixel the block emits VALUE without
// taking input, otherwise it forwards one input beat. The output goes through a two-beat FIFO, whose ready
// depends on its registered fill level only, so there is no combinational path from m_axis_tready to
// s_axis_tready.
`default_nettype none

module pqhw_pad #(
    parameter int IMG_H = 2,             // input rows (>= 1)
    parameter int IMG_W = 2,             // input columns (>= 1)
    parameter int CH    = 1,             // channels per pixel (SIMD divides CH)
    parameter int SIMD  = 1,             // channels per beat, in and out
    parameter int PAD_T = 1,             // rows added above (>= 0)
    parameter int PAD_L = 1,             // columns added left (>= 0)
    parameter int PAD_B = 1,             // rows added below (>= 0)
    parameter int PAD_R = 1,             // columns added right (>= 0)
    parameter int BITS  = 1,             // bits of one element
    parameter int VALUE = 0              // padded element; its low BITS bits go out (two's complement)
) (
    input  wire logic                  clk,
    input  wire logic                  rst,            // synchronous, active high
    input  wire logic [SIMD*BITS-1:0]  s_axis_tdata,   // channel f*SIMD+s at [s*BITS]
    input  wire logic                  s_axis_tvalid,
    output logic                       s_axis_tready,
    output logic [SIMD*BITS-1:0]       m_axis_tdata,
    output logic                       m_axis_tvalid,
    input  wire logic                  m_axis_tready
);
    localparam int CF = CH / SIMD;
    localparam int OH = PAD_T + IMG_H + PAD_B;
    localparam int OW = PAD_L + IMG_W + PAD_R;
    localparam int YW = $clog2(OH + 1);
    localparam int XW = $clog2(OW + 1);
    localparam int FW = CF > 1 ? $clog2(CF) : 1;
    localparam logic [BITS-1:0] VAL = BITS'(VALUE);

    if (CH < 1 || SIMD < 1 || CH % SIMD != 0 || BITS < 1) begin : g_bad_fold
        pqhw_error_pad_simd_must_divide_ch_and_bits_positive u_err ();
    end
    if (IMG_H < 1 || IMG_W < 1 || PAD_T < 0 || PAD_L < 0 || PAD_B < 0 || PAD_R < 0) begin : g_bad_shape
        pqhw_error_pad_image_must_be_nonempty_and_padding_nonnegative u_err ();
    end

    logic [YW-1:0] y;
    logic [XW-1:0] x;
    logic [FW-1:0] f;
    // above the image / left of it; comparisons with 0 are left out (always false, and lint says so)
    logic above, left;
    if (PAD_T > 0) begin : g_top
        assign above = (y < YW'(PAD_T));
    end else begin : g_no_top
        assign above = 1'b0;
    end
    if (PAD_L > 0) begin : g_left
        assign left = (x < XW'(PAD_L));
    end else begin : g_no_left
        assign left = 1'b0;
    end
    wire logic is_pad = above || left || (y >= YW'(PAD_T + IMG_H)) || (x >= XW'(PAD_L + IMG_W));

    logic fifo_ready;
    wire logic push = fifo_ready && (is_pad || s_axis_tvalid);
    assign s_axis_tready = fifo_ready && !is_pad;

    always_ff @(posedge clk) begin
        if (rst) begin
            y <= '0;
            x <= '0;
            f <= '0;
        end else if (push) begin
            f <= (f == FW'(CF - 1)) ? '0 : f + 1'b1;
            if (f == FW'(CF - 1)) begin
                x <= (x == XW'(OW - 1)) ? '0 : x + 1'b1;
                if (x == XW'(OW - 1)) begin
                    y <= (y == YW'(OH - 1)) ? '0 : y + 1'b1;
                end
            end
        end
    end

    logic [$clog2(3)-1:0] fifo_count;
    pqhw_fifo #(
        .WIDTH(SIMD*BITS), .DEPTH(2)
    ) u_out (
        .clk(clk), .rst(rst),
        .s_axis_tdata(is_pad ? {SIMD{VAL}} : s_axis_tdata), .s_axis_tvalid(push), .s_axis_tready(fifo_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .count(fifo_count)
    );
endmodule

`default_nettype wire
