// Max-pool over window streams (FINN Pool, Function MaxPool): each output pixel arrives as its window of
// KK = K_H*K_W pixels of CH channels in im2col order (window position k, then channel fold f, PE channels a
// beat), as pqhw_swg produces it; the output is the channel-wise maximum, CH channels, PE a beat. Max-pooling
// k x k with stride s is pqhw_swg (K = k, stride s) followed by this block.
//
// A running maximum per channel fold (CF = CH/PE words of PE elements) is kept in a small memory read
// combinationally in the same stage that writes it, so consecutive beats of the same fold (CF = 1) need no
// forwarding. One beat a cycle; an output beat leaves on each beat of the last window position. Credit-based
// like the threshold unit: s_axis_tready depends only on registered state.
`default_nettype none

module pqhw_pool #(
    parameter int CH        = 1,  // channels (PE divides CH)
    parameter int PE        = 1,  // channels per beat, in and out
    parameter int KK        = 4,  // window positions per output pixel (K_H * K_W, >= 1)
    parameter int BITS      = 1,  // bits of one element
    parameter bit SIGNED    = 0,  // elements are two's complement
    parameter int OUT_DEPTH = 4   // output FIFO beats (>= 2)
) (
    input  wire logic                  clk,
    input  wire logic                  rst,            // synchronous, active high
    input  wire logic [PE*BITS-1:0]    s_axis_tdata,   // channel f*PE+p of window position k at [p*BITS]
    input  wire logic                  s_axis_tvalid,
    output logic                       s_axis_tready,
    output logic [PE*BITS-1:0]         m_axis_tdata,   // channel f*PE+p at [p*BITS]
    output logic                       m_axis_tvalid,
    input  wire logic                  m_axis_tready
);
    localparam int CF  = CH / PE;
    localparam int FW  = CF > 1 ? $clog2(CF) : 1;
    localparam int KW  = KK > 1 ? $clog2(KK) : 1;

    if (CH < 1 || PE < 1 || CH % PE != 0 || BITS < 1) begin : g_bad_fold
        pqhw_error_pool_pe_must_divide_ch_and_bits_positive u_err ();
    end
    if (KK < 1 || OUT_DEPTH < 2) begin : g_bad_window
        pqhw_error_pool_kk_ge_1_and_out_depth_ge_2 u_err ();
    end

    logic [FW-1:0] f;
    logic [KW-1:0] k;
    logic credit_ok;
    // Beats wait for a free output slot (credit_ok) whatever their window position, so s_axis_tready does not
    // depend on the position; only beats of the last position reserve the slot (they alone deliver a result).
    wire logic last_k = (k == KW'(KK - 1));
    wire logic fire = s_axis_tvalid && credit_ok;
    assign s_axis_tready = credit_ok;

    // stage B: the beat, its fold and position flags
    logic [PE*BITS-1:0] x_b;
    logic [FW-1:0] f_b;
    logic v_b, first_b, last_b;
    always_ff @(posedge clk) begin
        if (rst) begin
            f   <= '0;
            k   <= '0;
            v_b <= 1'b0;
        end else begin
            v_b <= fire;
            if (fire) begin
                f <= (f == FW'(CF - 1)) ? '0 : f + 1'b1;
                if (f == FW'(CF - 1)) begin
                    k <= last_k ? '0 : k + 1'b1;
                end
            end
        end
        if (fire) begin
            x_b     <= s_axis_tdata;
            f_b     <= f;
            first_b <= (k == '0);
            last_b  <= last_k;
        end
    end

    // stage B: running maximum read, updated and written back; the maximum of the last position goes out
    logic [PE*BITS-1:0] run [CF];
    logic [PE*BITS-1:0] cur, m_b;
    assign cur = run[f_b];
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic [BITS-1:0] a, b;
            logic a_gt;
            a = x_b[p*BITS +: BITS];
            b = cur[p*BITS +: BITS];
            a_gt = SIGNED ? ($signed(a) > $signed(b)) : (a > b);
            m_b[p*BITS +: BITS] = (first_b || a_gt) ? a : b;
        end
    end
    always_ff @(posedge clk) begin
        if (v_b) begin
            run[f_b] <= m_b;
        end
    end

    pqhw_credit_fifo #(
        .WIDTH(PE*BITS), .DEPTH(OUT_DEPTH + 2), .REG_CREDIT(0)
    ) u_out (
        .clk(clk), .rst(rst), .reserve(fire && last_k), .credit_ok(credit_ok),
        .s_tdata(m_b), .s_tvalid(v_b && last_b),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
endmodule

`default_nettype wire
