// Label select (top-1): the index of the largest of CH elements streamed PE a beat; the lowest index wins
// ties, as in ONNX TopK and the numpy reference.
//
// Pipelined for clock rate: the input beat is registered, its PE lanes are reduced by a binary tree of
// compare-select nodes with one register stage per tree level, and only then compared with the running
// best of the vector. The index of a finished vector goes into a small result queue. Flow control is by
// credit: `reserved` counts vectors whose last beat was taken and whose index has not left the queue, and
// a last beat is only taken while a slot is free, so s_axis_tready depends on registered state only (no
// combinational path from m_axis_tready) and one-beat vectors still pass every cycle.
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
    localparam int LV = PE > 1 ? $clog2(PE) : 0;      // compare-select tree levels
    localparam int LW = PE > 1 ? $clog2(PE) : 1;      // bits of a lane number
    localparam int VW = IN_BITS + 1;                   // element as a signed value
    localparam int QD = LV + 5;                        // result queue: pipeline depth plus two
    localparam int QW = $clog2(QD + 1);

    if (CH < 1 || PE < 1 || CH % PE != 0) begin : g_bad_fold
        pqhw_error_label_select_pe_must_divide_ch u_err ();
    end
    if (OUT_BITS < IW || IN_BITS < 1) begin : g_bad_bits
        pqhw_error_label_select_out_bits_must_hold_clog2_ch u_err ();
    end

    // ---- input: beat counter and credit ----------------------------------------------------------------
    logic [NFW-1:0] nf;
    logic [IW-1:0] base;                 // index of lane 0 in the current beat
    logic [QW-1:0] reserved;             // vectors taken whose index has not been popped
    wire logic last = (nf == NFW'(NF - 1));
    assign s_axis_tready = !(last && reserved == QW'(QD));
    wire logic fire = s_axis_tvalid && s_axis_tready;

    // ---- tree: level 0 is the registered beat, level k+1 the registered winners of level k's pairs -----
    // Level k holds node j (of ceil(PE / 2^k)) at [(k*PE + j)]; a right node wins only if strictly greater.
    logic [(LV+1)*PE*VW-1:0] tv;         // node values
    logic [(LV+1)*PE*LW-1:0] tl;         // node lane numbers
    logic [LV:0] t_load, t_cmp;          // per level: a valid first beat of a vector, a valid later beat
    logic [LV:0] t_last;                 // per level: last beat of a vector
    logic [(LV+1)*IW-1:0] t_base;

    always_ff @(posedge clk) begin
        if (rst) begin
            nf <= '0;
            base <= '0;
            t_load <= '0;
            t_cmp <= '0;
        end else begin
            t_load <= (LV+1)'({t_load, fire && nf == '0});
            t_cmp <= (LV+1)'({t_cmp, fire && nf != '0});
            if (fire) begin
                nf <= last ? '0 : nf + 1'b1;
                base <= last ? '0 : base + IW'(PE);
            end
        end
        if (fire) begin
            for (int p = 0; p < PE; p++) begin
                // offset binary (sign bit flipped): unsigned order is then the signed order
                tv[p*VW +: VW] <= {!(IN_SIGNED & s_axis_tdata[p*IN_BITS + IN_BITS - 1]), s_axis_tdata[p*IN_BITS +: IN_BITS]};
                tl[p*LW +: LW] <= LW'(p);
            end
        end
        t_last[0] <= last;
        t_base[0 +: IW] <= base;
        for (int k = 1; k <= LV; k++) begin
            for (int j = 0; j < (PE + (1 << k) - 1) >> k; j++) begin
                logic [VW-1:0] a, b;
                a = tv[((k-1)*PE + 2*j)*VW +: VW];
                if (2*j + 1 < (PE + (1 << (k-1)) - 1) >> (k-1)) begin
                    b = tv[((k-1)*PE + 2*j + 1)*VW +: VW];
                    if (b > a) begin
                        tv[(k*PE + j)*VW +: VW] <= b;
                        tl[(k*PE + j)*LW +: LW] <= tl[((k-1)*PE + 2*j + 1)*LW +: LW];
                    end else begin
                        tv[(k*PE + j)*VW +: VW] <= a;
                        tl[(k*PE + j)*LW +: LW] <= tl[((k-1)*PE + 2*j)*LW +: LW];
                    end
                end else begin
                    tv[(k*PE + j)*VW +: VW] <= a;
                    tl[(k*PE + j)*LW +: LW] <= tl[((k-1)*PE + 2*j)*LW +: LW];
                end
            end
            t_last[k] <= t_last[k-1];
            t_base[k*IW +: IW] <= t_base[(k-1)*IW +: IW];
        end
    end

    // ---- running best over the beats of a vector -------------------------------------------------------
    // The compare result feeds the running best's enable through one gate: whether a beat is a vector's
    // first (load it) or a later one (load it if greater) is decided a level earlier, into t_load/t_cmp.
    wire logic [VW-1:0] beat_val = tv[LV*PE*VW +: VW];
    wire logic [IW-1:0] beat_idx = t_base[LV*IW +: IW] + IW'(tl[LV*PE*LW +: LW]);
    logic [VW-1:0] best_val;
    logic [IW-1:0] best_idx;
    wire logic greater = beat_val > best_val;
    wire logic take = t_load[LV] || (t_cmp[LV] && greater);
    wire logic [IW-1:0] win_idx = (t_load[LV] || greater) ? beat_idx : best_idx;
    wire logic done = (t_load[LV] || t_cmp[LV]) && t_last[LV];
    always_ff @(posedge clk) begin
        if (take) begin
            best_val <= beat_val;
            best_idx <= beat_idx;
        end
    end

    // ---- result queue: QD entries, written only into a slot the credit reserved ------------------------
    localparam int QAW = $clog2(QD);
    logic [OUT_BITS-1:0] q [QD];
    logic [QAW-1:0] wr, rd;
    logic [QW-1:0] qn;
    wire logic pop = m_axis_tvalid && m_axis_tready;
    assign m_axis_tvalid = (qn != '0);
    assign m_axis_tdata = q[rd];
    // the finished index is registered before the queue write: the compare-select and a distributed-RAM
    // write setup do not fit one fast cycle together
    logic push;
    logic [IW-1:0] push_idx;
    always_ff @(posedge clk) begin
        push <= !rst && done;
        push_idx <= win_idx;
    end
    always_ff @(posedge clk) begin
        if (push) begin
            q[wr] <= OUT_BITS'(push_idx);
        end
        if (rst) begin
            reserved <= '0;
            qn <= '0;
            wr <= '0;
            rd <= '0;
        end else begin
            reserved <= reserved + QW'(fire && last) - QW'(pop);
            qn <= qn + QW'(push) - QW'(pop);
            if (push) begin
                wr <= (wr == QAW'(QD - 1)) ? '0 : wr + 1'b1;
            end
            if (pop) begin
                rd <= (rd == QAW'(QD - 1)) ? '0 : rd + 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
