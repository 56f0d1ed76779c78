// Framed byte protocol between a UART and an accelerator's AXI4-Stream ports, with recovery from line faults.
//
// Host to board: one header byte (HEADER), then FRAME_ELEMS payload bytes, one input element per byte in
// its low ELEM_BITS bits (two's complement for signed elements; the upper bits are ignored). Bytes other
// than HEADER between frames are ignored.
// Board to host: one byte per good frame, the accelerator's output (the class index), zero-extended.
//
// Recovery. "Quiet" means TIMEOUT_BITS bit times (TIMEOUT_BITS * CLKS_PER_BIT clock cycles) in which the
// receiver delivered no byte and reported no error. A frame is aborted when
//   - the line is quiet before its last payload byte arrived (short or cut-off frame), or
//   - the receiver reports a byte with a low stop bit (rx_error from frame_error) or a byte it dropped
//     because the bridge could not take it in time (rx_error from overrun).
// An aborted frame gets no reply. Beats of it already sent to the accelerator are completed with zero
// elements, and the accelerator's class for it is discarded; replies of earlier frames still go out.
// A receiver error between frames is handled like an abort (the lost byte may have been a header).
// After an abort every byte is discarded until the line is quiet, the completion is done and the discarded
// class has come out; then the bridge looks for HEADER again. So a host that sees no reply waits at least
// TIMEOUT_BITS bit times after its last byte and sends the next frame, which is classified as usual.
// A frame shorter than FRAME_ELEMS followed by the next frame within TIMEOUT_BITS bit times cannot be told
// apart from one frame: the protocol carries no length or checksum.
// Bytes that arrive while a reply is being sent are received as usual: receiver and transmitter are
// independent (full duplex), so the next frame may start while the previous reply is on the line.
// Up to 15 frames may be inside the accelerator at once; beyond that the bridge waits before a header.
//
// SIMD elements are packed per input beat, element 0 in the least significant bits (hw.ir stream layout).
// The beat register only changes while it is empty or being taken (a full beat waits until it is taken).
// The output path is a pass-through (tx_tvalid = s_axis_tvalid, s_axis_tready = tx_tready) except for the
// class of an aborted frame, which is taken from the accelerator and not passed on.
`default_nettype none

module uart_stream_bridge #(
    parameter int          ELEM_BITS    = 1,      // bits per input element, 1..8
    parameter int          SIMD         = 1,      // input elements per accelerator input beat
    parameter int          FRAME_ELEMS  = 64,     // input elements per frame, a multiple of SIMD
    parameter int          OUT_BITS     = 4,      // width of the accelerator's output, 1..8
    parameter logic [7:0]  HEADER       = 8'hA5,  // byte that starts a frame
    parameter int          CLKS_PER_BIT = 217,    // clock cycles per UART bit, as in uart_rx; at least 4
    parameter int          TIMEOUT_BITS = 2048    // bit times of quiet that end a frame; at least 20
) (
    input  wire                        clk,
    input  wire                        rst,            // synchronous, active high
    // bytes from the UART receiver
    input  wire  [7:0]                 rx_tdata,
    input  wire                        rx_tvalid,
    output logic                       rx_tready,
    input  wire                        rx_error,       // one-cycle pulse: a byte was lost (bad stop bit, overrun)
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
        if (CLKS_PER_BIT < 4 || TIMEOUT_BITS < 20) begin : g_bad_timeout
            uart_stream_bridge_TIMEOUT_BITS_must_be_at_least_20 u_bad_parameter ();
        end
    endgenerate

    localparam int NW = $clog2(FRAME_ELEMS + 1);
    localparam int LW = (SIMD > 1) ? $clog2(SIMD) : 1;
    localparam int QUIET = CLKS_PER_BIT * TIMEOUT_BITS;  // clock cycles of quiet that end a frame
    localparam int QW = $clog2(QUIET + 1);

    // HUNT: looking for HEADER. FRAME: payload bytes expected. FILL: completing an aborted frame with zero
    // elements. SKIP: discarding bytes until quiet and until the aborted frame's class has been discarded.
    typedef enum logic [1:0] {HUNT, FRAME, FILL, SKIP} state_t;
    state_t state;

    logic [NW-1:0] remaining;  // elements still to deliver in this frame
    logic [LW-1:0] lane;       // next lane of the beat being gathered
    logic [QW-1:0] idle;       // clock cycles since the receiver last delivered a byte or an error
    logic [3:0]    pending;    // frames whose last beat went to the accelerator and whose class has not come out
    logic          drop;       // the last of the pending classes belongs to an aborted frame

    wire quiet     = (idle == QW'(QUIET));
    wire room      = !m_axis_tvalid || m_axis_tready;         // the beat register can take an element
    wire abort     = (state == FRAME) && (rx_error || quiet);
    wire drop_now  = drop && (pending == 4'd1);
    wire out_taken = s_axis_tvalid && s_axis_tready;

    always_comb begin
        case (state)
            HUNT:    rx_tready = (pending != 4'hF);
            FRAME:   rx_tready = room && !abort;
            default: rx_tready = 1'b1;  // FILL, SKIP: bytes are discarded
        endcase
        if (rst) begin
            rx_tready = 1'b0;
        end
    end

    wire take = rx_tvalid && rx_tready;
    // One element goes into the beat register: a payload byte, or a zero while completing an aborted frame.
    wire put  = (state == FRAME && take) || (state == FILL && room);
    wire [ELEM_BITS-1:0] elem = (state == FRAME) ? rx_tdata[ELEM_BITS-1:0] : '0;

    // Elements shift in from the top, so after SIMD elements element 0 sits in the least significant bits;
    // a shift costs no logic per lane, unlike a write at a variable lane index.
    logic [SIMD*ELEM_BITS-1:0] next_beat;
    generate
        if (SIMD == 1) begin : g_one_lane
            assign next_beat = elem;
        end else begin : g_shift
            assign next_beat = {elem, m_axis_tdata[SIMD*ELEM_BITS-1:ELEM_BITS]};
        end
    endgenerate
    wire last_lane  = (SIMD == 1) || (lane == LW'(SIMD - 1));
    wire last_elem  = put && (remaining == NW'(1));  // the frame's last beat is complete this cycle

    always_ff @(posedge clk) begin
        if (m_axis_tvalid && m_axis_tready) begin
            m_axis_tvalid <= 1'b0;
        end
        if (rst) begin
            state         <= HUNT;
            remaining     <= '0;
            lane          <= '0;
            idle          <= QW'(QUIET);
            pending       <= '0;
            drop          <= 1'b0;
            m_axis_tdata  <= '0;
            m_axis_tvalid <= 1'b0;
        end else begin
            if (rx_tvalid || rx_error) begin
                idle <= '0;
            end else if (!quiet) begin
                idle <= idle + 1'b1;
            end

            if (put) begin
                m_axis_tdata <= next_beat;
                remaining    <= remaining - 1'b1;
                if (last_lane) begin
                    lane          <= '0;
                    m_axis_tvalid <= 1'b1;
                end else begin
                    lane <= lane + 1'b1;
                end
            end

            pending <= pending + 4'(last_elem) - 4'(out_taken);
            if (out_taken && drop_now) begin
                drop <= 1'b0;
            end

            case (state)
                HUNT: begin
                    if (rx_error) begin
                        state <= SKIP;  // the lost byte may have been a header: its payload must not look like one
                    end else if (take && rx_tdata == HEADER) begin
                        state     <= FRAME;
                        remaining <= NW'(FRAME_ELEMS);
                        lane      <= '0;
                    end
                end
                FRAME: begin
                    if (abort) begin
                        // Nothing of the frame reached the beat register: nothing to complete or discard.
                        state <= (remaining == NW'(FRAME_ELEMS)) ? SKIP : FILL;
                    end else if (last_elem) begin
                        state <= HUNT;
                    end
                end
                FILL: begin
                    if (last_elem) begin
                        state <= SKIP;
                        drop  <= 1'b1;
                    end
                end
                SKIP: begin
                    if (quiet && !drop && !rx_tvalid) begin
                        state <= HUNT;
                    end
                end
                default: state <= HUNT;
            endcase
        end
    end

    assign tx_tdata      = 8'(s_axis_tdata);
    assign tx_tvalid     = s_axis_tvalid && !drop_now;
    assign s_axis_tready = tx_tready || drop_now;
endmodule

`default_nettype wire
