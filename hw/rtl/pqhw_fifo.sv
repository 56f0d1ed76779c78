// Stream FIFO: first-word-fall-through, registered occupancy count for credit-based producers.
// Ready and valid depend only on registered state, so there is no combinational path between the
// two sides; DEPTH beats give DEPTH beats of slack between producer and consumer.
//
// The head beat sits in an output register, filled from the memory, so consumers see flip-flops rather
// than a RAM read. A beat appears two cycles after it is pushed (one with BYPASS, where the head also takes
// it straight from the input when the memory is empty).
//
// One occupancy counter serves both sides: the memory holds count - head_v beats. The pointers count modulo
// a power of two whenever that needs no more storage than DEPTH rounded up to a distributed-RAM cell
// (16 words): the wrap-around then costs nothing.
//
// A FIFO of PIPE_MIN_BITS or more (the size at which synthesis may choose block RAM) reads through two
// registers instead: the RAM's own read register, then the head, which on ECP5 becomes the block RAM's output
// register (hw/ecp5_outreg.py). The block RAM's slow clock-to-out then stays inside the FIFO; a beat appears
// three cycles after it is pushed, and the FIFO still moves one beat a cycle.
//
// BLOCK puts the memory in block RAM whatever its size (hw.emit does that for link FIFOs where an idle block
// RAM saves the distributed RAM's LUTs) and reads it that way.
//
// No read ever meets a write to the same word (the memory is never full while the producer may push), so
// the memory needs no read-during-write logic (no_rw_check).
`default_nettype none

module pqhw_fifo #(
    parameter int WIDTH = 8,  // bits per beat (>= 1)
    parameter int DEPTH = 4,  // beats held (>= 1)
    parameter int PIPE_MIN_BITS = 1024, // read through two registers from WIDTH * DEPTH of this many bits
    parameter bit BYPASS = DEPTH < 3,   // an input beat may go straight into an empty head (see below)
    parameter bit BLOCK = 0             // the memory in block RAM (ram_style "block"), read through two registers
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

    localparam bit PIPE = BLOCK || WIDTH * DEPTH >= PIPE_MIN_BITS;
    localparam STYLE = BLOCK ? "block" : "auto";   // Yosys reads ram_style; the simulators ignore it

    (* no_rw_check, ram_style = STYLE *) logic [WIDTH-1:0] mem [SLOTS];
    logic [AW-1:0] wr_ptr, rd_ptr;
    logic [WIDTH-1:0] head;
    logic head_v;

    // Counting by one in plain logic, not an adder: on ECP5 each adder is a carry chain that costs 4 LUTs
    // beyond its bits in nextpnr (its entry and exit cells), so a FIFO's four small counters took about 40
    // LUTs as chains (FINN's TFC_2W2A links, bench.lut_breakdown).
    function automatic logic [AW-1:0] ptr_inc(input logic [AW-1:0] x);
        logic c;
        c = 1'b1;
        for (int i = 0; i < AW; i++) begin
            ptr_inc[i] = x[i] ^ c;
            c = c & x[i];
        end
    endfunction
    function automatic logic [CW-1:0] count_step(input logic [CW-1:0] x, input logic up);
        logic c;   // carry (up) or borrow (down) into bit i
        c = 1'b1;
        for (int i = 0; i < CW; i++) begin
            count_step[i] = x[i] ^ c;
            c = c & (x[i] ~^ up);
        end
    endfunction

    wire logic push = s_axis_tvalid && s_axis_tready;
    wire logic pop  = m_axis_tvalid && m_axis_tready;
    wire logic [AW-1:0] wr_next = (WRAP && wr_ptr == AW'(DEPTH - 1)) ? AW'(0) : ptr_inc(wr_ptr);
    wire logic [AW-1:0] rd_next = (WRAP && rd_ptr == AW'(DEPTH - 1)) ? AW'(0) : ptr_inc(rd_ptr);

    assign s_axis_tready = (count != CW'(DEPTH));
    assign m_axis_tvalid = head_v;
    assign m_axis_tdata  = head;

    logic wr_adv, rd_adv;   // the pointers move on (each form below says when)
    always_ff @(posedge clk) begin
        if (rst) begin
            count  <= '0;
            wr_ptr <= '0;
            rd_ptr <= '0;
        end else begin
            if (push != pop) begin
                count <= count_step(count, push);
            end
            if (wr_adv) begin
                wr_ptr <= wr_next;
            end
            if (rd_adv) begin
                rd_ptr <= rd_next;
            end
        end
    end

    if (!PIPE) begin : g_direct
        // With BYPASS a beat goes into an empty head straight from the input: a FIFO of 1 or 2 beats needs
        // that to move a beat a cycle, and a credit loop sized for it (pqhw_credit_fifo) keeps it. Without,
        // every beat passes through the memory and the head takes the RAM's word alone: no multiplexer per
        // bit in front of it (a 64-bit link FIFO spent ~2 LUT4s a bit on it).
        wire logic mem_empty = (count == CW'(head_v));   // count = beats in mem + head_v
        wire logic load = !head_v || pop;                // the output register takes a beat this cycle
        wire logic from_mem = load && !mem_empty;
        wire logic bypass = BYPASS && load && mem_empty && push;
        wire logic write = push && !bypass;              // the beat stays in mem (advances wr_ptr)
        assign wr_adv = write;
        assign rd_adv = from_mem;

        always_ff @(posedge clk) begin
            // Every pushed beat is written at wr_ptr, a free slot; a bypassed one simply leaves wr_ptr where
            // it is. The write enable is then the producer's valid alone, not the consumer's ready as well.
            if (push) begin
                mem[wr_ptr] <= s_axis_tdata;
            end
            if (from_mem) begin
                head <= mem[rd_ptr];
            end else if (bypass) begin
                head <= s_axis_tdata;
            end
            if (rst) begin
                head_v <= 1'b0;
            end else if (load) begin
                head_v <= from_mem || bypass;
            end
        end
    end else begin : g_pipe
        logic [WIDTH-1:0] rdata;   // the RAM's read register
        logic rdata_v;
        // count = beats in mem + rdata_v + head_v
        // count > head_v + rdata_v, without a comparator's carry chain
        wire logic [CW+1:0] cx = (CW + 2)'(count);   // two bits wider: bits 1 and 0 exist at any depth
        wire logic more_than_1 = |(cx >> 1);
        wire logic more_than_2 = |(cx >> 2) || (cx[1] && cx[0]);
        wire logic mem_has = (head_v && rdata_v) ? more_than_2 : (head_v || rdata_v) ? more_than_1 : count != '0;
        wire logic take = rdata_v && (!head_v || pop);     // rdata -> head
        wire logic read = mem_has && (!rdata_v || take);   // mem -> rdata
        assign wr_adv = push;
        assign rd_adv = read;

        always_ff @(posedge clk) begin
            if (push) begin
                mem[wr_ptr] <= s_axis_tdata;
            end
            if (read) begin
                rdata <= mem[rd_ptr];
            end
            if (take) begin
                head <= rdata;
            end
            if (rst) begin
                rdata_v <= 1'b0;
                head_v  <= 1'b0;
            end else begin
                if (read || take) begin
                    rdata_v <= read;
                end
                if (take || pop) begin
                    head_v <= take;
                end
            end
        end
    end
endmodule

`default_nettype wire
