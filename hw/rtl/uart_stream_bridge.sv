// Framed byte protocol between a UART and an accelerator's AXI4-Stream ports.
//
// Host to board: one header byte (HEADER), then FRAME_ELEMS payload bytes, one input element per byte in
// its low ELEM_BITS bits (two's complement for signed elements; the upper bits are ignored). Bytes other
// than HEADER between frames are ignored, so a host that lost track sends FRAME_ELEMS zero bytes: they
// complete any partial frame, and the surplus is ignored.
// Board to host: one byte per frame, the accelerator's output (the class index), zero-extended.
//
// SIMD elements are packed per input beat, element 0 in the least significant bits (hw.ir stream layout).
// The beat register only changes while m_axis_tvalid is low (a full beat waits until it is taken).
// The output path is a pass-through: tx_tvalid = s_axis_tvalid and s_axis_tready = tx_tready.
`default_nettype none

module uart_stream_bridge #(
    parameter int          ELEM_BITS   = 1,      // bits per input element, 1..8
    parameter int          SIMD        = 1,      // input elements per accelerator input beat
    parameter int          FRAME_ELEMS = 64,     // input elements per frame, a multiple of SIMD
    parameter int          OUT_BITS    = 4,      // width of the accelerator's output, 1..8
    parameter logic [7:0]  HEADER      = 8'hA5   // byte that starts a frame
) (
    input  wire                        clk,
    input  wire                        rst,            // synchronous, active high
    // bytes from the UART receiver
    input  wire  [7:0]                 rx_tdata,
    input  wire                        rx_tvalid,
    output logic                       rx_tready,
    // input beats to the accelerator
    output logic [SIMD*ELEM_BITS-1:0]  m_axis_tdata,
    output logic                       m_axis_tvalid,
    input  wire                        m_axis_tready,
    // results from the accelerator
    input  wire  [OUT_BITS-1:0]        s_axis_tdata,
    input  wire                        s_axis_tvalid,
    output logic                       s_axis_tready,
    // bytes to the UART transmitter
    output logic [7:0]                 tx_tdata,
    output logic                       tx_tvalid,
    input  wire                        tx_tready
);
    // Illegal parameters instantiate a module that does not exist, so every tool stops at elaboration.
    generate
        if (ELEM_BITS < 1 || ELEM_BITS > 8) begin : g_bad_elem
            uart_stream_bridge_ELEM_BITS_must_be_1_to_8 u_bad_parameter ();
        end
        if (SIMD < 1 || FRAME_ELEMS < 1 || FRAME_ELEMS % SIMD != 0) begin : g_bad_frame
            uart_stream_bridge_FRAME_ELEMS_must_be_a_multiple_of_SIMD u_bad_parameter ();
        end
        if (OUT_BITS < 1 || OUT_BITS > 8) begin : g_bad_out
            uart_stream_bridge_OUT_BITS_must_be_1_to_8 u_bad_parameter ();
        end
    endgenerate

    localparam int NW = $clog2(FRAME_ELEMS + 1);
    localparam int LW = (SIMD > 1) ? $clog2(SIMD) : 1;

    logic          in_frame;   // header seen, payload bytes expected
    logic [NW-1:0] remaining;  // payload bytes still expected in this frame
    logic [LW-1:0] lane;       // next lane of the beat being gathered

    // A byte is taken when idle (looking for a header) or when the beat register has room for it.
    assign rx_tready = !rst && (!in_frame || !m_axis_tvalid || m_axis_tready);

    wire take = rx_tvalid && rx_tready;

    // Elements shift in from the top, so after SIMD bytes element 0 sits in the least significant bits;
    // a shift costs no logic per lane, unlike a write at a variable lane index.
    logic [SIMD*ELEM_BITS-1:0] next_beat;
    generate
        if (SIMD == 1) begin : g_one_lane
            assign next_beat = rx_tdata[ELEM_BITS-1:0];
        end else begin : g_shift
            assign next_beat = {rx_tdata[ELEM_BITS-1:0], m_axis_tdata[SIMD*ELEM_BITS-1:ELEM_BITS]};
        end
    endgenerate
    wire last_lane = (SIMD == 1) || (lane == LW'(SIMD - 1));

    always_ff @(posedge clk) begin
        if (m_axis_tvalid && m_axis_tready) begin
            m_axis_tvalid <= 1'b0;
        end
        if (rst) begin
            in_frame      <= 1'b0;
            remaining     <= '0;
            lane          <= '0;
            m_axis_tdata  <= '0;
            m_axis_tvalid <= 1'b0;
        end else if (take) begin
            if (!in_frame) begin
                if (rx_tdata == HEADER) begin
                    in_frame  <= 1'b1;
                    remaining <= NW'(FRAME_ELEMS);
                    lane      <= '0;
                end
            end else begin
                m_axis_tdata <= next_beat;
                remaining <= remaining - 1'b1;
                if (last_lane) begin
                    lane          <= '0;
                    m_axis_tvalid <= 1'b1;
                end else begin
                    lane <= lane + 1'b1;
                end
                if (remaining == NW'(1)) begin
                    in_frame <= 1'b0;
                end
            end
        end
    end

    assign tx_tdata      = 8'(s_axis_tdata);
    assign tx_tvalid     = s_axis_tvalid;
    assign s_axis_tready = tx_tready;
endmodule

`default_nettype wire
