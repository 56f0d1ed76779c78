// Label select (top-1): the index of the largest of CH elements streamed PE a beat; the lowest index wins
// ties, as in ONNX TopK and the numpy reference. The index of a finished vector goes into a 2-entry queue;
// input is only held back when a last beat arrives and that queue is full (registered state, so there is
// no combinational path from m_axis_tready), which lets a one-beat vector pass every cycle.
`default_nettype none

module pqhw_label_select #(
    parameter int CH        = 10,  // elements per vector (PE divides CH)
    parameter int PE        = 1,   // elements per beat
    parameter int IN_BITS   = 8,   // bits of one element
    parameter bit IN_SIGNED = 1,   // elements are two's complement
    parameter int OUT_BITS  = 8    // bits of the index on m_axis_tdata (>= clog2(CH))
) (
    input  wire logic                     clk,
    input  wire logic                     rst,            // synchronous, active high
    input  wire logic [PE*IN_BITS-1:0]    s_axis_tdata,
    input  wire logic                     s_axis_tvalid,
    output logic                          s_axis_tready,
    output logic [OUT_BITS-1:0]           m_axis_tdata,
    output logic                          m_axis_tvalid,
    input  wire logic                     m_axis_tready
);
    localparam int NF = CH / PE;
    localparam int NFW = NF > 1 ? $clog2(NF) : 1;
    localparam int IW = CH > 1 ? $clog2(CH) : 1;

    if (CH < 1 || PE < 1 || CH % PE != 0) begin : g_bad_fold
        pqhw_error_label_select_pe_must_divide_ch u_err ();
    end
    if (OUT_BITS < IW || IN_BITS < 1) begin : g_bad_bits
        pqhw_error_label_select_out_bits_must_hold_clog2_ch u_err ();
    end

    logic [NFW-1:0] nf;
    logic [IW-1:0] base;                 // index of lane 0 in the current beat
    logic signed [IN_BITS:0] best_val;
    logic [IW-1:0] best_idx;
    logic signed [IN_BITS:0] cand_val;
    logic [IW-1:0] cand_idx;

    logic [OUT_BITS-1:0] q0, q1;       // result queue, q0 at the head
    logic [1:0] qn;                    // entries in the queue
    wire logic last = (nf == NFW'(NF - 1));
    assign s_axis_tready = !(last && qn == 2'd2);
    wire logic fire = s_axis_tvalid && s_axis_tready;

    always_comb begin
        cand_val = best_val;
        cand_idx = best_idx;
        for (int p = 0; p < PE; p++) begin
            logic [IN_BITS-1:0] e;
            logic signed [IN_BITS:0] v;
            e = s_axis_tdata[p*IN_BITS +: IN_BITS];
            v = {IN_SIGNED & e[IN_BITS-1], e};
            if ((nf == '0 && p == 0) || v > cand_val) begin
                cand_val = v;
                cand_idx = base + IW'(p);
            end
        end
    end

    always_ff @(posedge clk) begin
        if (rst) begin
            nf <= '0;
            base <= '0;
        end else if (fire) begin
            nf <= last ? '0 : nf + 1'b1;
            base <= last ? '0 : base + IW'(PE);
        end
        if (fire) begin
            best_val <= cand_val;
            best_idx <= cand_idx;
        end
    end

    wire logic push = fire && last;
    wire logic pop = m_axis_tvalid && m_axis_tready;
    assign m_axis_tvalid = (qn != 2'd0);
    assign m_axis_tdata = q0;
    always_ff @(posedge clk) begin
        if (rst) begin
            qn <= 2'd0;
        end else begin
            qn <= qn + {1'b0, push} - {1'b0, pop};
        end
        if (pop) begin
            q0 <= (push && qn == 2'd1) ? OUT_BITS'(cand_idx) : q1;
        end else if (push && qn == 2'd0) begin
            q0 <= OUT_BITS'(cand_idx);
        end
        if (push && (pop ? qn == 2'd2 : qn == 2'd1)) begin
            q1 <= OUT_BITS'(cand_idx);
        end
    end
endmodule

`default_nettype wire
