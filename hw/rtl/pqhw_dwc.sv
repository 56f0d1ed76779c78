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

    assign s_axis_tready = (cnt + CNTW'(IN_N)) <= CNTW'(CAP);
    assign m_axis_tvalid = cnt >= CNTW'(OUT_N);
    assign m_axis_tdata = buffer[OUT_N*EW-1:0];

    always_comb begin
        buffer_next = buffer;
        cnt_next = cnt;
        if (m_axis_tvalid && m_axis_tready) begin
            buffer_next = buffer_next >> (OUT_N * EW);
            cnt_next = cnt_next - CNTW'(OUT_N);
        end
        if (s_axis_tvalid && s_axis_tready) begin
            buffer_next = buffer_next | ((CAP*EW)'(s_axis_tdata) << (cnt_next * EW));
            cnt_next = cnt_next + CNTW'(IN_N);
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
