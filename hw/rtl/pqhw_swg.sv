// Sliding-window generator (FINN ConvolutionInputGenerator): an IFM_H x IFM_W image of CH channels comes in
// NHWC order, SIMD channels a beat (CF = CH/SIMD beats a pixel); for every output pixel (oy, ox), in row-major
// order, the K_H x K_W window at (oy*S_H, ox*S_W) goes out in im2col order: for kh, for kw, for channel fold
// f, the beat of input pixel (oy*S_H + kh, ox*S_W + kw) fold f. That is the order of FINN's LowerConvsToMatMul
// weight matrix, so an MVAU with MW = K_H*K_W*CH takes one window as one input vector.
//
// Line buffer: ROWS row slots of IFM_W*CF beats, input row g in slot g mod ROWS, written as it arrives and read
// with one cycle of latency (a simple dual-port memory: block RAM when large, distributed RAM or flip-flops
// when small, as synthesis chooses). The writer and the reader run independently. D = (row being written) -
// (first row of the reader's current window row) says what is safe: the writer may write while D < ROWS (the
// slot it overwrites belongs to a row no window still needs); a window beat of row offset kh may be read once
// D > kh, or D == kh and the writer is past that beat in its row. With ROWS = K_H + S_H the writer fills the
// next window row's input while the current one is read, so neither side waits in steady state.
//
// Output: read data registered twice (the block RAM output register, then a plain register) into the output
// FIFO, whose slot is reserved when the read is issued (pqhw_credit_fifo); s_axis_tready depends only on
// registered state.
`default_nettype none

module pqhw_swg #(
    parameter int IFM_H     = 4,  // input rows (>= K_H)
    parameter int IFM_W     = 4,  // input columns (>= K_W)
    parameter int CH        = 1,  // channels per pixel (SIMD divides CH)
    parameter int SIMD      = 1,  // channels per beat, in and out
    parameter int K_H       = 2,  // window rows (>= 1)
    parameter int K_W       = 2,  // window columns (>= 1)
    parameter int S_H       = 1,  // vertical stride (>= 1)
    parameter int S_W       = 1,  // horizontal stride (>= 1)
    parameter int BITS      = 1,  // bits of one element
    parameter int ROWS      = 3,  // input rows the line buffer holds (>= K_H; K_H + S_H never waits)
    parameter int OUT_DEPTH = 4   // output FIFO beats beyond the read latency (>= 2)
) (
    input  wire logic                    clk,
    input  wire logic                    rst,            // synchronous, active high
    input  wire logic [SIMD*BITS-1:0]    s_axis_tdata,   // channel f*SIMD+s of a pixel at [s*BITS]
    input  wire logic                    s_axis_tvalid,
    output logic                         s_axis_tready,
    output logic [SIMD*BITS-1:0]         m_axis_tdata,   // same layout, window order
    output logic                         m_axis_tvalid,
    input  wire logic                    m_axis_tready
);
    localparam int CF    = CH / SIMD;                   // beats per pixel
    localparam int OFM_H = (IFM_H - K_H) / S_H + 1;     // output rows
    localparam int OFM_W = (IFM_W - K_W) / S_W + 1;     // output columns
    localparam int RWB   = IFM_W * CF;                  // beats per input row
    localparam int DEPTH = ROWS * RWB;                  // line buffer beats
    localparam int KWF   = K_W * CF;                    // beats of one window row
    localparam int AW    = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam int CW    = $clog2(RWB + 1);             // in-row beat index
    localparam int KHW   = K_H > 1 ? $clog2(K_H) : 1;
    localparam int KFW   = KWF > 1 ? $clog2(KWF) : 1;
    localparam int OXW   = OFM_W > 1 ? $clog2(OFM_W) : 1;
    localparam int OYW   = OFM_H > 1 ? $clog2(OFM_H) : 1;
    localparam int DW    = $clog2(ROWS + IFM_H + 2) + 2; // signed row distance D
    // Line-buffer address steps, each below DEPTH: one row, one window row down (S_H rows), and from the last
    // window row of a frame to the next frame's row 0 (the rows left below the last window, plus its stride).
    localparam int STEP_ROW   = (RWB) % DEPTH;
    localparam int STEP_OY    = ((S_H % ROWS) * RWB) % DEPTH;
    localparam int FRAME_ROWS = IFM_H - (OFM_H - 1) * S_H;  // rows from the last window row to the frame's end
    localparam int STEP_FRAME = ((FRAME_ROWS % ROWS) * RWB) % DEPTH;
    localparam int LAT   = 2;                           // issue to output FIFO
    localparam int FD    = OUT_DEPTH + LAT + 1;         // output FIFO beats (+1: registered credit)

    if (CH < 1 || SIMD < 1 || CH % SIMD != 0 || BITS < 1) begin : g_bad_fold
        pqhw_error_swg_simd_must_divide_ch_and_bits_positive u_err ();
    end
    if (K_H < 1 || K_W < 1 || K_H > IFM_H || K_W > IFM_W || S_H < 1 || S_W < 1) begin : g_bad_window
        pqhw_error_swg_window_must_fit_the_image_and_strides_positive u_err ();
    end
    if (ROWS < K_H || OUT_DEPTH < 2) begin : g_bad_buffer
        pqhw_error_swg_rows_must_be_at_least_k_h_and_out_depth_ge_2 u_err ();
    end

    function automatic logic [AW-1:0] wrap_add(input logic [AW-1:0] a, input int step);
        logic [AW:0] s;
        s = {1'b0, a} + (AW + 1)'(step);
        wrap_add = (s >= (AW + 1)'(DEPTH)) ? AW'(s - (AW + 1)'(DEPTH)) : AW'(s);
    endfunction

    logic [SIMD*BITS-1:0] mem [DEPTH];

    // ---- writer ------------------------------------------------------------------------------------------
    logic signed [DW-1:0] rdist;        // D: rows between the row being written and the reader's window row
    logic [AW-1:0] waddr;
    logic [CW-1:0] wcol;               // beats of the current input row written so far
    assign s_axis_tready = (rdist < $signed(DW'(ROWS)));
    wire logic accept = s_axis_tvalid && s_axis_tready;
    wire logic row_in = accept && (wcol == CW'(RWB - 1));

    always_ff @(posedge clk) begin
        if (accept) begin
            mem[waddr] <= s_axis_tdata;
        end
    end

    // ---- reader ------------------------------------------------------------------------------------------
    logic [KHW-1:0] kh;
    logic [KFW-1:0] kwf;               // kw * CF + f
    logic [OXW-1:0] ox;
    logic [OYW-1:0] oy;
    logic [CW-1:0] col;                // ox * S_W * CF: first beat of the window in its rows
    logic [AW-1:0] bbase;              // address of the window row's first input row, column 0
    logic [AW-1:0] rbase;              // address of input row oy*S_H + kh, column 0
    logic credit_ok;

    wire logic [CW-1:0] need = col + CW'(kwf);
    wire logic avail = (rdist > $signed({{(DW - KHW){1'b0}}, kh}))
                    || (rdist == $signed({{(DW - KHW){1'b0}}, kh}) && wcol > need);
    wire logic issue = avail && credit_ok;
    wire logic last_kwf = (kwf == KFW'(KWF - 1));
    wire logic last_kh  = (kh == KHW'(K_H - 1));
    wire logic last_ox  = (ox == OXW'(OFM_W - 1));
    wire logic last_oy  = (oy == OYW'(OFM_H - 1));
    wire logic win_end  = issue && last_kwf && last_kh;
    wire logic row_out  = win_end && last_ox;
    wire logic frame_out = row_out && last_oy;

    logic [SIMD*BITS-1:0] rdata, rdata_q;
    logic v1, v2;
    always_ff @(posedge clk) begin
        if (issue) begin
            rdata <= mem[rbase + AW'(need)];
        end
    end

    // The next window row's first address, from the current one.
    wire logic [AW-1:0] bbase_next = frame_out ? wrap_add(bbase, STEP_FRAME) : wrap_add(bbase, STEP_OY);

    always_ff @(posedge clk) begin
        rdata_q <= rdata;
        if (rst) begin
            rdist  <= '0;
            waddr <= '0;
            wcol  <= '0;
            kh    <= '0;
            kwf   <= '0;
            ox    <= '0;
            oy    <= '0;
            col   <= '0;
            bbase <= '0;
            rbase <= '0;
            v1    <= 1'b0;
            v2    <= 1'b0;
        end else begin
            v1 <= issue;
            v2 <= v1;
            if (accept) begin
                waddr <= wrap_add(waddr, 1);
                wcol  <= row_in ? '0 : wcol + 1'b1;
            end
            rdist <= rdist + (row_in ? DW'(1) : DW'(0))
                         - (frame_out ? DW'(FRAME_ROWS) : row_out ? DW'(S_H) : DW'(0));
            if (issue) begin
                kwf <= last_kwf ? '0 : kwf + 1'b1;
                if (last_kwf) begin
                    kh <= last_kh ? '0 : kh + 1'b1;
                    if (!last_kh) begin
                        rbase <= wrap_add(rbase, STEP_ROW);
                    end else if (!last_ox) begin
                        rbase <= bbase;
                    end else begin
                        rbase <= bbase_next;
                    end
                end
                if (win_end) begin
                    ox  <= last_ox ? '0 : ox + 1'b1;
                    col <= last_ox ? '0 : col + CW'(S_W * CF);
                    if (last_ox) begin
                        oy    <= last_oy ? '0 : oy + 1'b1;
                        bbase <= bbase_next;
                    end
                end
            end
        end
    end

    pqhw_credit_fifo #(
        .WIDTH(SIMD*BITS), .DEPTH(FD), .REG_CREDIT(1)
    ) u_out (
        .clk(clk), .rst(rst), .reserve(issue), .credit_ok(credit_ok),
        .s_tdata(rdata_q), .s_tvalid(v2),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
endmodule

`default_nettype wire
