// UART transmitter, 8N1, LSB first: sends one AXI4-Stream byte per frame; the line idles high.
// tready is high only while idle, so a byte is taken exactly when its frame starts.
`default_nettype none

module uart_tx #(
    parameter int CLKS_PER_BIT = 217  // clock cycles per bit: f_clk / baud, rounded; at least 4
) (
    input  wire        clk,
    input  wire        rst,           // synchronous, active high
    input  wire [7:0]  s_axis_tdata,  // byte to send
    input  wire        s_axis_tvalid,
    output logic       s_axis_tready,
    output logic       txd            // serial line
);
    // Illegal parameters instantiate a module that does not exist, so every tool stops at elaboration.
    generate
        if (CLKS_PER_BIT < 4) begin : g_bad_rate
            uart_tx_CLKS_PER_BIT_must_be_at_least_4 u_bad_parameter ();
        end
    endgenerate

    localparam int CW = $clog2(CLKS_PER_BIT + 1);

    logic [CW-1:0] ticks;    // cycles left in the current bit
    logic [3:0]    bits_left; // bits still to send after the current one; start + 8 data + stop = 10 bits
    logic [8:0]    shift;    // data bits then the stop bit, sent LSB first after the start bit
    logic          busy;

    assign s_axis_tready = !busy && !rst;

    always_ff @(posedge clk) begin
        if (rst) begin
            busy      <= 1'b0;
            txd       <= 1'b1;
            ticks     <= '0;
            bits_left <= '0;
            shift     <= '1;
        end else if (!busy) begin
            if (s_axis_tvalid) begin
                busy      <= 1'b1;
                txd       <= 1'b0;  // start bit
                shift     <= {1'b1, s_axis_tdata};
                ticks     <= CW'(CLKS_PER_BIT - 1);
                bits_left <= 4'd9;
            end
        end else if (ticks != '0) begin
            ticks <= ticks - 1'b1;
        end else if (bits_left == '0) begin
            busy <= 1'b0;  // stop bit finished
        end else begin
            txd       <= shift[0];
            shift     <= {1'b1, shift[8:1]};
            ticks     <= CW'(CLKS_PER_BIT - 1);
            bits_left <= bits_left - 1'b1;
        end
    end
endmodule

`default_nettype wire
