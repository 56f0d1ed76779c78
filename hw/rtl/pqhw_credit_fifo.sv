// Output stage of a credit-based block: the output FIFO plus the credit that lets the block start work
// only when its result has a guaranteed slot. The block raises `reserve` for each item it starts that will
// produce one result, and delivers that result later on s_tvalid/s_tdata; `used` counts the reserved
// results not yet taken from the FIFO (delivered or not). Since a result never waits, the block's pipeline
// never stalls.
//
// REG_CREDIT = 1 registers credit_ok, one cycle old: since it was computed at most one more item was
// reserved, so "used + 1 < DEPTH" then means "used < DEPTH" now. That keeps the
// block's s_axis_tready a few gates from flip-flops. REG_CREDIT = 0 computes it combinationally.
`default_nettype none

module pqhw_credit_fifo #(
    parameter int WIDTH      = 8,  // bits per result (>= 1)
    parameter int DEPTH      = 4,  // results the FIFO holds (>= 2)
    parameter bit REG_CREDIT = 1   // credit_ok from a flip-flop (1) or combinational (0)
) (
    input  wire logic             clk,
    input  wire logic             rst,            // synchronous, active high
    input  wire logic             reserve,        // an item that will produce one result starts now
    output logic                  credit_ok,      // a result slot is free: the block may reserve one
    input  wire logic [WIDTH-1:0] s_tdata,        // a reserved result, delivered
    input  wire logic             s_tvalid,
    output logic [WIDTH-1:0]      m_axis_tdata,
    output logic                  m_axis_tvalid,
    input  wire logic             m_axis_tready
);
    if (DEPTH < 2) begin : g_bad_depth
        pqhw_error_credit_fifo_depth_must_be_at_least_2 u_err ();
    end

    localparam int CW = $clog2(DEPTH + 1);

    // used = results in the FIFO + reserved ones not delivered yet: up on reserve, down when one leaves. One
    // counter and a comparison with a constant, both in plain logic (no carry chains: on ECP5 each costs 4
    // LUTs beyond its bits; the sum of two counters compared took three of them).
    logic [CW-1:0] used;
    wire logic pop = m_axis_tvalid && m_axis_tready;

    function automatic logic [CW-1:0] step(input logic [CW-1:0] x, input logic up);
        logic c;   // carry (up) or borrow (down) into bit i
        c = 1'b1;
        for (int i = 0; i < CW; i++) begin
            step[i] = x[i] ^ c;
            c = c & (x[i] ~^ up);
        end
    endfunction
    function automatic logic below(input logic [CW-1:0] x, input int k);   // x < k for a constant k >= 0
        logic lt, kb;
        lt = 1'b0;
        for (int i = 0; i < CW; i++) begin
            kb = ((k >> i) & 1) != 0;
            lt = (kb & !x[i]) | ((kb ~^ x[i]) & lt);
        end
        below = (k >= (1 << CW)) ? 1'b1 : lt;
    endfunction

    if (REG_CREDIT) begin : g_reg_credit
        always_ff @(posedge clk) begin
            credit_ok <= !rst && below(used, DEPTH - 1);
        end
    end else begin : g_comb_credit
        assign credit_ok = below(used, DEPTH);
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            used <= '0;
        end else if (reserve != pop) begin
            used <= step(used, reserve);
        end
    end

    logic fifo_ready;  // always high when s_tvalid: the credit reserved the slot
    pqhw_fifo #(
        // the credit is sized for a result visible a cycle after it arrives: a bypass, no read pipeline
        // (a FIFO this shallow sits in distributed RAM anyway)
        .WIDTH(WIDTH), .DEPTH(DEPTH), .BYPASS(1), .PIPE_MIN_BITS(1 << 30)
    ) u_fifo (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(fifo_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .count()
    );
endmodule

`default_nettype wire
