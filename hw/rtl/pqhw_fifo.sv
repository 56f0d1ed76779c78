// Stream FIFO: first-word-fall-through, registered occupancy count for credit-based producers.
// Ready and valid depend only on registered state, so there is no combinational path between the
// two sides; DEPTH beats give DEPTH beats of slack between producer and consumer.
//
// The head beat sits in an output register, filled from the memory (or straight from the input when the
// memory is empty), so consumers see flip-flops rather than a distributed-RAM read: the RAM's read delay
// stays out of the next block's logic. A beat still appears one cycle after it is pushed, as before.
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
    logic [$clog2(DEPTH+1)-1:0] held;   // beats in mem (count less the output register)
    logic [WIDTH-1:0] head;
    logic head_v;

    wire logic push = s_axis_tvalid && s_axis_tready;
    wire logic pop  = m_axis_tvalid && m_axis_tready;
    wire logic load = !head_v || pop;               // the output register takes a beat this cycle
    wire logic from_mem = load && (held != '0);
    wire logic bypass = load && (held == '0) && push;
    wire logic write = push && !bypass;             // the beat stays in mem (advances wr_ptr)

    assign s_axis_tready = (count != DEPTH[$clog2(DEPTH+1)-1:0]);
    assign m_axis_tvalid = head_v;
    assign m_axis_tdata  = head;

    always_ff @(posedge clk) begin
        // Every pushed beat is written at wr_ptr, a free slot; a bypassed one simply leaves wr_ptr where it
        // is. The write enable is then the producer's valid alone, not the consumer's ready as well.
        if (push) begin
            mem[wr_ptr] <= s_axis_tdata;
        end
        if (from_mem) begin
            head <= mem[rd_ptr];
        end else if (bypass) begin
            head <= s_axis_tdata;
        end
        if (rst) begin
            wr_ptr <= '0;
            rd_ptr <= '0;
            held   <= '0;
            head_v <= 1'b0;
            count  <= '0;
        end else begin
            if (write) begin
                wr_ptr <= (wr_ptr == AW'(DEPTH - 1)) ? '0 : wr_ptr + 1'b1;
            end
            if (from_mem) begin
                rd_ptr <= (rd_ptr == AW'(DEPTH - 1)) ? '0 : rd_ptr + 1'b1;
            end
            if (write && !from_mem) begin
                held <= held + 1'b1;
            end else if (from_mem && !write) begin
                held <= held - 1'b1;
            end
            if (load) begin
                head_v <= from_mem || bypass;
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
