// UART receiver, 8N1, LSB first: one received byte per AXI4-Stream beat.
// The line is synchronised with two flip-flops, the start bit is confirmed at its middle, each data bit is
// sampled at its middle, and a byte is only delivered when its stop bit reads high. A byte whose stop bit
// reads low is discarded and flagged on `frame_error`; the receiver then waits for the line to return high
// before it looks for the next start bit, so a line held low (a break, a cable pulled) reports one error, not
// one per byte time. A byte that arrives while the previous one is still unaccepted is dropped and flagged
// on `overrun`.
`default_nettype none

module uart_rx #(
    parameter int CLKS_PER_BIT = 217  // clock cycles per bit: f_clk / baud, rounded; at least 4
) (
    input  wire        clk,
    input  wire        rst,           // synchronous, active high
    input  wire        rxd,           // serial line, idle high
    output logic [7:0] m_axis_tdata,  // received byte
    output logic       m_axis_tvalid,
    input  wire        m_axis_tready,
    output logic       frame_error,   // pulses when a stop bit read low (byte discarded)
    output logic       overrun        // pulses when a byte was dropped because the output was full
);
    // Illegal parameters instantiate a module that does not exist, so every tool stops at elaboration.
    generate
        if (CLKS_PER_BIT < 4) begin : g_bad_rate
            uart_rx_CLKS_PER_BIT_must_be_at_least_4 u_bad_parameter ();
        end
    endgenerate

    localparam int CW = $clog2(CLKS_PER_BIT + 1);

    typedef enum logic [2:0] {IDLE, START, DATA, STOP, BREAK} state_t;
    state_t state;

    logic [2:0]    sync;      // sync[2] is the synchronised line
    logic [CW-1:0] ticks;     // cycles left until the next sample point
    logic [2:0]    bit_idx;
    logic [7:0]    shift;

    always_ff @(posedge clk) begin
        if (rst) begin
            sync <= 3'b111;
        end else begin
            sync <= {sync[1:0], rxd};
        end
    end

    always_ff @(posedge clk) begin
        frame_error <= 1'b0;
        overrun     <= 1'b0;
        if (m_axis_tvalid && m_axis_tready) begin
            m_axis_tvalid <= 1'b0;
        end
        if (rst) begin
            state         <= IDLE;
            ticks         <= '0;
            bit_idx       <= '0;
            shift         <= '0;
            m_axis_tdata  <= '0;
            m_axis_tvalid <= 1'b0;
        end else begin
            case (state)
                IDLE: begin
                    if (!sync[2]) begin
                        state <= START;
                        ticks <= CW'(CLKS_PER_BIT / 2 - 1);
                    end
                end
                START: begin
                    if (ticks != '0) begin
                        ticks <= ticks - 1'b1;
                    end else if (sync[2]) begin
                        state <= IDLE;  // a glitch, not a start bit
                    end else begin
                        state   <= DATA;
                        ticks   <= CW'(CLKS_PER_BIT - 1);
                        bit_idx <= '0;
                    end
                end
                DATA: begin
                    if (ticks != '0) begin
                        ticks <= ticks - 1'b1;
                    end else begin
                        shift   <= {sync[2], shift[7:1]};
                        ticks   <= CW'(CLKS_PER_BIT - 1);
                        bit_idx <= bit_idx + 1'b1;
                        if (bit_idx == 3'd7) begin
                            state <= STOP;
                        end
                    end
                end
                STOP: begin
                    if (ticks != '0) begin
                        ticks <= ticks - 1'b1;
                    end else begin
                        state <= IDLE;
                        if (!sync[2]) begin
                            frame_error <= 1'b1;
                            state       <= BREAK;
                        end else if (m_axis_tvalid && !m_axis_tready) begin
                            overrun <= 1'b1;
                        end else begin
                            m_axis_tdata  <= shift;
                            m_axis_tvalid <= 1'b1;
                        end
                    end
                end
                BREAK: begin
                    if (sync[2]) begin
                        state <= IDLE;  // the line is high again: the next falling edge is a start bit
                    end
                end
                default: state <= IDLE;
            endcase
        end
    end
endmodule

`default_nettype wire
