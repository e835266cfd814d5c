/*
 * bench_policy.c - cost of one policy decision, in process, profile loaded.
 *
 * Prints the median over BATCHES batches of ITERATIONS decisions each, for
 * two profile shapes: "minimal" (read_files, every path allowed, no block
 * lists: the cost of the engine) and "codegen-like" (the same plus the
 * nucleus.SENSITIVE and nucleus.AUTORUN pattern lists, whose glob
 * matching then dominates):
 *   1. nu_profile_eval on a profile without hooks (steps 1-7 only);
 *   2. nu_profile_eval on the same profile with a Lua check hook;
 *   3. the floor: lua_pcall of an empty Lua function from C in a plain
 *      lua_State, measured in the same run;
 * and the Lua memory of the loaded profile with the hook (our allocator's
 * count after a full collection).  Targets: (1) <= 1 us, (2) <= 3 us,
 * state <= 256 KiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "nucleus/json.h"
#include "nucleus/policy.h"

#define BATCHES 101
#define ITERATIONS 2000

#define MINIMAL_BODY                                                      \
    "  capabilities = { read_files = 'always', glob_search = 'always' },\n" \
    "  paths = { allow = nucleus.ALL },\n"

#define CODEGEN_BODY                                                      \
    "  capabilities = { read_files = 'always', glob_search = 'always' },\n" \
    "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE,\n"        \
    "            write_block = nucleus.AUTORUN },\n"

#define HOOK                                                              \
    "  check = function(call, ctx)\n"                                      \
    "    if blocked[call.path] then return 'deny', 'vendored secret' end\n" \
    "  end,\n"

#define LOCALS "local blocked = { ['vendor/secret.c'] = true }\n"

static const char *const nu__profiles[2][2] = {
    { "return nucleus.profile {\n" MINIMAL_BODY "}\n",
      LOCALS "return nucleus.profile {\n" MINIMAL_BODY HOOK "}\n" },
    { "return nucleus.profile {\n" CODEGEN_BODY "}\n",
      LOCALS "return nucleus.profile {\n" CODEGEN_BODY HOOK "}\n" },
};
static const char *const nu__shapes[2] = { "minimal", "codegen-like" };

static double nu__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int nu__compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double nu__median(double *samples, int n)
{
    qsort(samples, (size_t)n, sizeof *samples, nu__compare);
    return samples[n / 2];
}

static double nu__bench_profile(nu_profile_t *profile, const json_t *call)
{
    nu_decide_ctx_t ctx = { .now = 1700000000 };
    double samples[BATCHES];
    nu_decision_t d;

    for (int b = 0; b < BATCHES; b++) {
        double t0 = nu__now_ns();
        for (int i = 0; i < ITERATIONS; i++)
            nu_profile_eval(profile, call, &ctx, NULL, &d, NULL);
        samples[b] = (nu__now_ns() - t0) / ITERATIONS;
        if (d.verdict != NU_DECISION_ALLOW) {
            fprintf(stderr, "bench_policy: unexpected decision: %s\n",
                    d.reason);
            exit(1);
        }
    }
    return nu__median(samples, BATCHES);
}

static double nu__bench_floor(void)
{
    lua_State *L = luaL_newstate();
    double samples[BATCHES];

    luaL_dostring(L, "function empty() end");
    for (int b = 0; b < BATCHES; b++) {
        double t0 = nu__now_ns();
        for (int i = 0; i < ITERATIONS; i++) {
            lua_getglobal(L, "empty");
            lua_pcall(L, 0, 0, 0);
        }
        samples[b] = (nu__now_ns() - t0) / ITERATIONS;
    }
    lua_close(L);
    return nu__median(samples, BATCHES);
}

static nu_profile_t *nu__load(const char *name, const char *text)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    if (nu_profile_load_string(&profile, name, text, strlen(text), NULL,
                               &err) != NU_OK) {
        fprintf(stderr, "bench_policy: %s\n", err.msg);
        exit(1);
    }
    return profile;
}

int main(void)
{
    json_t *call = json_pack("{s:s, s:s}", "tool", "read", "path",
                             "src/core/main.c");
    size_t memory = 0;

    for (int shape = 0; shape < 2; shape++) {
        nu_profile_t *plain = nu__load("plain.lua", nu__profiles[shape][0]);
        nu_profile_t *hooked = nu__load("hooked.lua", nu__profiles[shape][1]);
        double t_plain = nu__bench_profile(plain, call);
        double t_hooked = nu__bench_profile(hooked, call);

        printf("%-12s decision, no hook:        %8.0f ns  (target <= 1000)\n",
               nu__shapes[shape], t_plain);
        printf("%-12s decision, Lua check hook: %8.0f ns  (target <= 3000)\n",
               nu__shapes[shape], t_hooked);
        printf("%-12s hook overhead:            %8.0f ns\n",
               nu__shapes[shape], t_hooked - t_plain);
        memory = nu_policy_memory(nu_profile_policy(hooked));
        nu_profile_free(plain);
        nu_profile_free(hooked);
    }

    printf("baseline: empty Lua call from C:       %8.0f ns  (floor)\n",
           nu__bench_floor());
    printf("loaded profile Lua state:              %8zu bytes (target <= %d)\n",
           memory, 256 * 1024);
    printf("(median of %d batches of %d decisions each)\n", BATCHES,
           ITERATIONS);
    json_decref(call);
    return 0;
}
