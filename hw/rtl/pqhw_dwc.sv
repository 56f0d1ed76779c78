// Stream width converter between layers that fold differently: IN_N elements a beat in, OUT_N out
// (producer PE != consumer SIMD). Elements keep their order (element 0 in the low bits). Frames are a
// whole number of both beat sizes, so no frame marker is needed. Ready and valid come from registers only.
// Whole ratios have their own datapath: R input beats collected into one output register (OUT_N = R*IN_N),
// or one input beat given out in R pieces from a shift register with a second beat waiting behind it
// (IN_N = R*OUT_N); on ECP5, 2-bit elements 4 -> 16 took 9 LUTs instead of 260 in the general buffer, and
// 16 -> 4 took 180 instead of 674 (bench/rtllib_compare.py).
// Any other ratio: a shift buffer of CAP elements holds the excess, at its registered fill level.
`default_nettype none

module pqhw_dwc #(
    parameter int EW    = 1,   // bits of one element
    parameter int IN_N  = 1,   // elements per input beat
    parameter int OUT_N = 1    // elements per output beat
) (
    input  wire logic                  clk,
    input  wire logic                  rst,            // synchronous, active high
    input  wire logic [IN_N*EW-1:0]    s_axis_tdata,
    input  wire logic                  s_axis_tvalid,
    output logic                       s_axis_tready,
    output logic [OUT_N*EW-1:0]        m_axis_tdata,
    output logic                       m_axis_tvalid,
    input  wire logic                  m_axis_tready
);
    if (EW < 1 || IN_N < 1 || OUT_N < 1) begin : g_bad_shape
        pqhw_error_dwc_sizes_must_be_positive u_err ();
    end

    localparam int INW = IN_N * EW;
    localparam int OUTW = OUT_N * EW;

    if (OUT_N > IN_N && OUT_N % IN_N == 0) begin : g_collect
        // R input beats make one output beat: beats 0..R-2 shift down through acc (the newest at the top),
        // the R-th goes with them into the output register. Input waits only while the R-th beat would
        // find the output register still full.
        localparam int R = OUT_N / IN_N;
        localparam int KW = $clog2(R);
        logic [KW-1:0] k;                  // beats of the current output beat taken so far
        logic [OUTW-INW-1:0] acc;
        logic [OUTW-1:0] out_q;
        logic out_v;
        wire logic last = (k == KW'(R - 1));
        wire logic take = s_axis_tvalid && s_axis_tready;
        assign s_axis_tready = !(last && out_v);
        assign m_axis_tvalid = out_v;
        assign m_axis_tdata = out_q;
        always_ff @(posedge clk) begin
            if (take && last) begin
                out_q <= {s_axis_tdata, acc};
            end else if (take) begin
                acc <= (OUTW - INW)'({s_axis_tdata, acc} >> INW);
            end
            if (rst) begin
                k <= '0;
                out_v <= 1'b0;
            end else begin
                if (take) begin
                    k <= last ? '0 : k + 1'b1;
                end
                if (take && last) begin
                    out_v <= 1'b1;
                end else if (m_axis_tready) begin
                    out_v <= 1'b0;
                end
            end
        end
    end else if (IN_N > OUT_N && IN_N % OUT_N == 0) begin : g_split
        // One input beat goes out in R pieces from sh (piece 0 at the bottom, shifted down per piece); the
        // next input beat waits in nx, so sh reloads in the cycle its last piece leaves.
        localparam int R = IN_N / OUT_N;
        localparam int LW = $clog2(R + 1);
        logic [INW-1:0] sh, nx;
        logic [LW-1:0] left;               // pieces of sh not given yet
        logic nx_v;
        wire logic take = s_axis_tvalid && s_axis_tready;
        wire logic give = m_axis_tvalid && m_axis_tready;
        wire logic drained = (left == '0) || (left == LW'(1) && give);
        assign s_axis_tready = !nx_v;
        assign m_axis_tvalid = (left != '0);
        assign m_axis_tdata = sh[OUTW-1:0];
        always_ff @(posedge clk) begin
            if (drained && nx_v) begin
                sh <= nx;
            end else if (drained && take) begin
                sh <= s_axis_tdata;
            end else if (give) begin
                sh <= sh >> OUTW;
            end
            if (!drained && take) begin
                nx <= s_axis_tdata;
            end
            if (rst) begin
                left <= '0;
                nx_v <= 1'b0;
            end else if (drained) begin
                left <= (nx_v || take) ? LW'(R) : '0;
                nx_v <= 1'b0;
            end else begin
                if (give) begin
                    left <= left - 1'b1;
                end
                if (take) begin
                    nx_v <= 1'b1;
                end
            end
        end
    end else begin : g_buffer
        // Two beats of each side: the input can be taken while a full output beat is waiting.
        localparam int CAP = 2 * (IN_N + OUT_N);
        localparam int CNTW = $clog2(CAP + 1);

        logic [CAP*EW-1:0] buffer, buffer_next;
        logic [CNTW-1:0] cnt, cnt_next;

        // one bit wider: the fill level plus a beat can exceed what CNTW bits hold (e.g. CAP = 30, IN_N = 10)
        assign s_axis_tready = ({1'b0, cnt} + (CNTW + 1)'(IN_N)) <= (CNTW + 1)'(CAP);
        assign m_axis_tvalid = cnt >= CNTW'(OUT_N);
        assign m_axis_tdata = buffer[OUT_N*EW-1:0];

        // The input lands at the fill level, or OUT_N elements lower when a beat leaves in the same cycle. Both
        // positions come from the registered count, so the shifters run in parallel with the handshake and
        // only a final select waits for the consumer's ready.
        wire logic take = s_axis_tvalid && s_axis_tready;
        wire logic give = m_axis_tvalid && m_axis_tready;
        wire logic [CAP*EW-1:0] in_at_fill = (CAP*EW)'(s_axis_tdata) << (cnt * EW);
        wire logic [CNTW-1:0] below = cnt - CNTW'(OUT_N);
        wire logic [CAP*EW-1:0] in_below_fill = (CAP*EW)'(s_axis_tdata) << (below * EW);
        always_comb begin
            if (give) begin
                buffer_next = (buffer >> (OUT_N * EW)) | (take ? in_below_fill : '0);
                cnt_next = cnt - CNTW'(OUT_N) + (take ? CNTW'(IN_N) : '0);
            end else begin
                buffer_next = buffer | (take ? in_at_fill : '0);
                cnt_next = cnt + (take ? CNTW'(IN_N) : '0);
            end
        end

        always_ff @(posedge clk) begin
            if (rst) begin
                buffer <= '0;
                cnt <= '0;
            end else begin
                buffer <= buffer_next;
                cnt <= cnt_next;
            end
        end
    end
endmodule

`default_nettype wire
