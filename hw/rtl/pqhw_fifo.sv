// Stream FIFO: first-word-fall-through, registered occupancy count for credit-based producers.
// Ready and valid depend only on registered state, so there is no combinational path between the
// two sides; DEPTH beats give DEPTH beats of slack between producer and consumer.
`default_nettype none

module pqhw_fifo #(
    parameter int WIDTH = 8,  // bits per beat (>= 1)
    parameter int DEPTH = 4   // beats held (>= 1)
) (
    input  wire logic                         clk,
    input  wire logic                         rst,             // synchronous, active high
    input  wire logic [WIDTH-1:0]             s_axis_tdata,
    input  wire logic                         s_axis_tvalid,
    output logic                              s_axis_tready,
    output logic [WIDTH-1:0]                  m_axis_tdata,
    output logic                              m_axis_tvalid,
    input  wire logic                         m_axis_tready,
    output logic [$clog2(DEPTH+1)-1:0]        count            // beats stored now
);
    if (WIDTH < 1) begin : g_bad_width
        pqhw_error_fifo_width_must_be_positive u_err ();
    end
    if (DEPTH < 1) begin : g_bad_depth
        pqhw_error_fifo_depth_must_be_positive u_err ();
    end

    localparam int AW = DEPTH > 1 ? $clog2(DEPTH) : 1;

    logic [WIDTH-1:0] mem [DEPTH];
    logic [AW-1:0] wr_ptr, rd_ptr;

    wire logic push = s_axis_tvalid && s_axis_tready;
    wire logic pop  = m_axis_tvalid && m_axis_tready;

    assign s_axis_tready = (count != DEPTH[$clog2(DEPTH+1)-1:0]);
    assign m_axis_tvalid = (count != '0);
    assign m_axis_tdata  = mem[rd_ptr];

    always_ff @(posedge clk) begin
        if (push) begin
            mem[wr_ptr] <= s_axis_tdata;
        end
        if (rst) begin
            wr_ptr <= '0;
            rd_ptr <= '0;
            count  <= '0;
        end else begin
            if (push) begin
                wr_ptr <= (wr_ptr == AW'(DEPTH - 1)) ? '0 : wr_ptr + 1'b1;
            end
            if (pop) begin
                rd_ptr <= (rd_ptr == AW'(DEPTH - 1)) ? '0 : rd_ptr + 1'b1;
            end
            if (push && !pop) begin
                count <= count + 1'b1;
            end else if (pop && !push) begin
                count <= count - 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
