# Sourced by distill and teachers: the arithmetic of new runs. OFA trains these recipes with
# --amp, which on a CPU is PyTorch's bfloat16 autocast; sfkd's --precision bf16 is the same,
# twice as fast where the CPU computes bfloat16 (AVX512_BF16, AMX). `auto` takes bf16 there and
# fp32 elsewhere (sfkd's bf16 emulation gives the same numbers with no speed gained); a
# resumed run keeps the precision it started with.
#   choose_precision auto|fp32|bf16 SFKD   sets precision_flags (the student's) and
#                                          teacher_precision_flags, and says which it chose
choose_precision() {
    local requested=$1 sfkd=$2 reason="as asked"
    if [[ $requested == auto ]]; then
        if [[ -x "$sfkd" ]] && "$sfkd" info --json 2>/dev/null | grep -q '"bf16_hardware" *: *true'; then
            requested=bf16 reason="this CPU computes bfloat16, as OFA's --amp"
        else
            requested=fp32 reason="no bfloat16 instructions on this CPU (or sfkd not built)"
        fi
    fi
    case "$requested" in
        fp32|bf16) ;;
        *) echo "--precision takes auto, fp32 or bf16, not '$requested'" >&2; exit 2 ;;
    esac
    echo "precision: $requested ($reason); --precision fp32|bf16 overrides" >&2
    precision_flags=(--precision "$requested")
    teacher_precision_flags=(--teacher-precision "$requested")
}
