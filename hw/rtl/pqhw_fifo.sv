// Stream FIFO: first-word-fall-through, registered occupancy count for credit-based producers.
// Ready and valid depend only on registered state, so there is no combinational path between the
// two sides; DEPTH beats give DEPTH beats of slack between producer and consumer.
//
// The head beat sits in an output register, filled from the memory (or straight from the input when the
// memory is empty), so consumers see flip-flops rather than a RAM read. A beat appears one cycle after it
// is pushed.
//
// One occupancy counter serves both sides: the memory holds count - head_v beats. The pointers count modulo
// a power of two whenever that needs no more storage than DEPTH rounded up to a distributed-RAM cell
// (16 words): the wrap-around then costs nothing.
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
    localparam int CW = $clog2(DEPTH + 1);
    localparam bit WRAP = (2 ** AW) > ((DEPTH + 15) / 16) * 16;   // pointers wrap at DEPTH, not 2**AW
    localparam int SLOTS = WRAP ? DEPTH : 2 ** AW;

    logic [WIDTH-1:0] mem [SLOTS];
    logic [AW-1:0] wr_ptr, rd_ptr;
    logic [WIDTH-1:0] head;
    logic head_v;

    wire logic push = s_axis_tvalid && s_axis_tready;
    wire logic pop  = m_axis_tvalid && m_axis_tready;
    wire logic mem_empty = (count == CW'(head_v));   // count = beats in mem + head_v
    wire logic load = !head_v || pop;                // the output register takes a beat this cycle
    wire logic from_mem = load && !mem_empty;
    wire logic bypass = load && mem_empty && push;
    wire logic write = push && !bypass;              // the beat stays in mem (advances wr_ptr)

    assign s_axis_tready = (count != CW'(DEPTH));
    assign m_axis_tvalid = head_v;
    assign m_axis_tdata  = head;

    wire logic [AW-1:0] wr_next = (WRAP && wr_ptr == AW'(DEPTH - 1)) ? AW'(0) : wr_ptr + 1'b1;
    wire logic [AW-1:0] rd_next = (WRAP && rd_ptr == AW'(DEPTH - 1)) ? AW'(0) : rd_ptr + 1'b1;

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
            head_v <= 1'b0;
            count  <= '0;
        end else begin
            if (write) begin
                wr_ptr <= wr_next;
            end
            if (from_mem) begin
                rd_ptr <= rd_next;
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
