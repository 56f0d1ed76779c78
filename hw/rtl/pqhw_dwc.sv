// Stream width converter between layers that fold differently: IN_N elements a beat in, OUT_N out
// (producer PE != consumer SIMD). Elements keep their order (element 0 in the low bits). Frames are a
// whole number of both beat sizes, so no frame marker is needed. A shift buffer of CAP elements holds the
// excess; ready and valid come from its registered fill level only.
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
endmodule

`default_nettype wire
