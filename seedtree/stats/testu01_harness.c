/*
 * seedtree-testu01: run a TestU01 battery on the 64-bit words read from standard input.
 *
 *   seedtree stream --scheme seedtree --streams 1024 | seedtree-testu01 smallcrush [both|lo|hi]
 *
 * Input: raw little-endian 64-bit words (what `seedtree stream` writes). TestU01 tests
 * 32-bit numbers, so each word is split: "both" (default) gives its low half then its high
 * half, so every bit is tested; "lo" / "hi" keep one half.
 *
 * Output: TestU01's own report, then one machine-readable line per p-value:
 *     RESULT<TAB>test name<TAB>p-value
 * Exit status: 0 when the battery ran to the end (the verdict is the caller's), 2 on bad
 * usage, 3 when the input ended before the battery did (never a silent pass).
 *
 * Built by scripts/install-batteries.sh (gcc ... -ltestu01 -ltestu01probdist -ltestu01mylib).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <testu01/bbattery.h>
#include <testu01/gofw.h>
#include <testu01/scomp.h>
#include <testu01/smarsa.h>
#include <testu01/sknuth.h>
#include <testu01/sres.h>
#include <testu01/swrite.h>
#include <testu01/unif01.h>

#define BUF_BYTES (1 << 20)

static unsigned char buffer[BUF_BYTES];
static size_t buf_pos, buf_len;
static unsigned long long bytes_read;
static int half_mode; /* 0: both halves, 1: low only, 2: high only */
static int have_pending;
static uint32_t pending;

static uint64_t next_word(void)
{
    if (buf_len - buf_pos < 8) {
        size_t rest = buf_len - buf_pos;
        memmove(buffer, buffer + buf_pos, rest);
        buf_len = rest;
        buf_pos = 0;
        while (buf_len < 8) {
            size_t got = fread(buffer + buf_len, 1, BUF_BYTES - buf_len, stdin);
            if (got == 0) {
                fflush(stdout);
                fprintf(stderr, "seedtree-testu01: input ended after %llu bytes, before the battery finished\n",
                        bytes_read);
                exit(3);
            }
            buf_len += got;
        }
    }
    uint64_t w = 0;
    for (int i = 7; i >= 0; --i)
        w = (w << 8) | buffer[buf_pos + i];
    buf_pos += 8;
    bytes_read += 8;
    return w;
}

static unsigned int next32(void)
{
    if (half_mode == 1)
        return (uint32_t)next_word();
    if (half_mode == 2)
        return (uint32_t)(next_word() >> 32);
    if (have_pending) {
        have_pending = 0;
        return pending;
    }
    uint64_t w = next_word();
    pending = (uint32_t)(w >> 32);
    have_pending = 1;
    return (uint32_t)w;
}

static int n_results;

static void result(const char *name, double p)
{
    printf("RESULT\t%s\t%.17g\n", name, p);
    ++n_results;
}

static void battery_results(void)
{
    for (int i = 0; i < bbattery_NTests; ++i)
        result(bbattery_TestNames[i], bbattery_pVal[i]);
}

/* Crush's linear tests only (its MatrixRank and LinearComp entries, same parameters as in
 * bbattery_Crush, r = 0 and s = 30 unless noted): the ones that see linear generators. */
static void crush_linear(unif01_Gen *gen)
{
    sres_Chi2 *res = sres_CreateChi2();
    smarsa_MatrixRank(gen, res, 1, 1000000, 0, 30, 60, 60);
    result("MatrixRank, 60 x 60, r = 0", res->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, res, 1, 1000000, 20, 10, 60, 60);
    result("MatrixRank, 60 x 60, r = 20", res->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, res, 1, 50000, 0, 30, 300, 300);
    result("MatrixRank, 300 x 300, r = 0", res->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, res, 1, 50000, 20, 10, 300, 300);
    result("MatrixRank, 300 x 300, r = 20", res->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, res, 1, 2000, 0, 30, 1200, 1200);
    result("MatrixRank, 1200 x 1200, r = 0", res->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, res, 1, 2000, 20, 10, 1200, 1200);
    result("MatrixRank, 1200 x 1200, r = 20", res->pVal2[gofw_Mean]);
    sres_DeleteChi2(res);

    scomp_Res *lin = scomp_CreateRes();
    scomp_LinearComp(gen, lin, 1, 120000, 0, 1);
    result("LinearComp, r = 0 (jump count)", lin->JumpNum->pVal2[gofw_Mean]);
    result("LinearComp, r = 0 (jump size)", lin->JumpSize->pVal2[gofw_Mean]);
    scomp_LinearComp(gen, lin, 1, 120000, 29, 1);
    result("LinearComp, r = 29 (jump count)", lin->JumpNum->pVal2[gofw_Mean]);
    result("LinearComp, r = 29 (jump size)", lin->JumpSize->pVal2[gofw_Mean]);
    scomp_DeleteRes(lin);
}

/* A few small tests (a few MB of input): checks the harness end to end in seconds. */
static void smoke(unif01_Gen *gen)
{
    sres_Poisson *poi = sres_CreatePoisson();
    smarsa_BirthdaySpacings(gen, poi, 1, 2000000, 0, 1 << 28, 2, 1);
    result("BirthdaySpacings, t = 2", poi->pVal2);
    sres_DeletePoisson(poi);

    sres_Chi2 *chi = sres_CreateChi2();
    sknuth_Gap(gen, chi, 1, 200000, 0, 0.0, 0.125);
    result("Gap, r = 0", chi->pVal2[gofw_Mean]);
    smarsa_MatrixRank(gen, chi, 1, 2000, 0, 30, 60, 60);
    result("MatrixRank, 60 x 60", chi->pVal2[gofw_Mean]);
    sres_DeleteChi2(chi);
}

int main(int argc, char **argv)
{
    const char *usage = "usage: seedtree-testu01 smallcrush|crush|bigcrush|crush-linear|smoke [both|lo|hi] < words\n";
    if (argc < 2 || argc > 3) {
        fputs(usage, stderr);
        return 2;
    }
    if (argc == 3) {
        if (strcmp(argv[2], "both") == 0)
            half_mode = 0;
        else if (strcmp(argv[2], "lo") == 0)
            half_mode = 1;
        else if (strcmp(argv[2], "hi") == 0)
            half_mode = 2;
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    const char *battery = argv[1];
    if (strcmp(battery, "smallcrush") && strcmp(battery, "crush") && strcmp(battery, "bigcrush") &&
        strcmp(battery, "crush-linear") && strcmp(battery, "smoke")) {
        fputs(usage, stderr);
        return 2;
    }
    swrite_Basic = FALSE; /* TestU01's per-test detail; the summary and our RESULT lines remain */
    unif01_Gen *gen = unif01_CreateExternGenBits("stdin64", next32);
    if (strcmp(battery, "smallcrush") == 0) {
        bbattery_SmallCrush(gen);
        battery_results();
    } else if (strcmp(battery, "crush") == 0) {
        bbattery_Crush(gen);
        battery_results();
    } else if (strcmp(battery, "bigcrush") == 0) {
        bbattery_BigCrush(gen);
        battery_results();
    } else if (strcmp(battery, "crush-linear") == 0) {
        crush_linear(gen);
    } else {
        smoke(gen);
    }
    unif01_DeleteExternGenBits(gen);
    printf("BYTES\t%llu\n", bytes_read);
    return n_results > 0 ? 0 : 4;
}
