// MultiThreshold datapath, FINN semantics: y = #{i : a >= T[i]} + BIAS. Combinational, or with the
// comparison results registered (REG = 1: one cycle of latency, the compare and the count in separate
// cycles), or with the count registered as well (REG = 2: two cycles; many thresholds make a deep count).
// With SORTED (each lane's thresholds non-decreasing, as FINN's are) the reached flags form a thermometer
// code, and bit j of the count is the XOR of flags 2^j - 1, 2 * 2^j - 1, ...: two LUT levels for 15
// thresholds instead of an adder chain. Shared by the MVAU output stage, the standalone threshold unit and
// the unrolled xnor layer. Thresholds are signed TH_BITS
// values wide enough for [lo, hi + 1] of the input (one bit more than a signed input, two more than an
// unsigned one), so "never reached" and "always reached" are representable whatever the signedness.
`default_nettype none

module pqhw_mt #(
    parameter int LANES     = 1,   // elements processed side by side (>= 1)
    parameter int IN_BITS   = 8,   // bits of one input element (>= 1)
    parameter bit IN_SIGNED = 1,   // input elements are two's complement (1) or unsigned (0)
    parameter int NT        = 1,   // thresholds per lane (>= 1)
    parameter int TH_BITS   = 9,   // bits of one signed threshold (>= IN_BITS + 1, + 2 if unsigned input)
    parameter int BIAS      = 0,   // added to the count (FINN out_bias)
    parameter int OUT_BITS  = 2,   // bits of one output element; count + BIAS wraps to this width
    parameter int REG       = 0,   // registers: 0 none, 1 the comparisons, 2 comparisons and count (latency REG)
    parameter bit SORTED    = 0    // thresholds non-decreasing per lane (else the result is wrong): decoded count
) (
    input  wire logic                        clk,         // used when REG = 1
    input  wire logic [LANES*IN_BITS-1:0]    in_data,
    input  wire logic [LANES*NT*TH_BITS-1:0] thresholds,  // lane l, threshold i at [(l*NT+i)*TH_BITS]
    output logic [LANES*OUT_BITS-1:0]        out_data
);
    if (LANES < 1 || IN_BITS < 1 || NT < 1 || OUT_BITS < 1) begin : g_bad_shape
        pqhw_error_mt_lanes_bits_and_thresholds_must_be_positive u_err ();
    end
    if (TH_BITS < IN_BITS + (IN_SIGNED ? 1 : 2)) begin : g_bad_th
        pqhw_error_mt_th_bits_must_exceed_in_bits u_err ();
    end

    localparam int CW = $clog2(NT + 1);

    logic [LANES*NT-1:0] ge, ge_q;  // lane l, threshold i reached at [l*NT+i]
    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            logic [TH_BITS-1:0] a;
            a = {{(TH_BITS - IN_BITS){IN_SIGNED & in_data[l*IN_BITS + IN_BITS - 1]}}, in_data[l*IN_BITS +: IN_BITS]};
            for (int i = 0; i < NT; i++) begin
                ge[l*NT + i] = $signed(a) >= $signed(thresholds[(l*NT + i)*TH_BITS +: TH_BITS]);
            end
        end
    end

    if (REG < 0 || REG > 2) begin : g_bad_reg
        pqhw_error_mt_reg_must_be_0_1_or_2 u_err ();
    end

    if (REG >= 1) begin : g_reg
        always_ff @(posedge clk) begin
            ge_q <= ge;
        end
    end else begin : g_comb
        assign ge_q = ge;
    end

    logic [LANES*OUT_BITS-1:0] y;
    always_comb begin
        for (int l = 0; l < LANES; l++) begin
            logic [CW-1:0] cnt;
            cnt = '0;
            if (SORTED) begin
                // count n of a thermometer code: bit j is set iff n mod 2^(j+1) >= 2^j, and n >= k iff
                // flag k-1 is set, so bit j = flag(2^j - 1) ^ flag(2 * 2^j - 1) ^ flag(3 * 2^j - 1) ^ ...
                for (int j = 0; j < CW; j++) begin
                    for (int k = (1 << j); k <= NT; k = k + (1 << j)) begin
                        cnt[j] = cnt[j] ^ ge_q[l*NT + k - 1];
                    end
                end
            end else begin
                for (int i = 0; i < NT; i++) begin
                    cnt = cnt + CW'(ge_q[l*NT + i]);
                end
            end
            y[l*OUT_BITS +: OUT_BITS] = OUT_BITS'(32'(cnt) + BIAS);
        end
    end

    if (REG == 2) begin : g_count_reg
        always_ff @(posedge clk) begin
            out_data <= y;
        end
    end else begin : g_count_comb
        assign out_data = y;
    end
endmodule

`default_nettype wire
