/*
 * pod_budget.c - the budget ledger of a pod.
 *
 * Maxima come from the effective permission.  A tool call reserves its
 * cost before it runs and settles after, so concurrent calls cannot
 * together exceed a maximum; children hold a carved share until they
 * close.  The caller holds the pod lock.
 */
#include <math.h>

#include "pod_internal.h"

static int64_t nu__sat_add(int64_t a, int64_t b)
{
    if (a == NU_UNLIMITED || b == NU_UNLIMITED || a > NU_UNLIMITED - b)
        return NU_UNLIMITED;
    return a + b;
}

void nu__ledger_init(nu_ledger_t *l, const nu_budget_t *max)
{
    l->max = *max;
    l->spent = (nu_budget_t){ 0, 0, 0, 0 };
    l->reserved = l->spent;
    l->carved = l->spent;
}

void nu__ledger_committed(const nu_ledger_t *l, nu_budget_t *out)
{
    out->usd = l->spent.usd + l->reserved.usd + l->carved.usd;
    out->input_tokens = nu__sat_add(nu__sat_add(l->spent.input_tokens,
                                                l->reserved.input_tokens),
                                    l->carved.input_tokens);
    out->output_tokens = nu__sat_add(nu__sat_add(l->spent.output_tokens,
                                                 l->reserved.output_tokens),
                                     l->carved.output_tokens);
    out->tool_calls = nu__sat_add(nu__sat_add(l->spent.tool_calls,
                                              l->reserved.tool_calls),
                                  l->carved.tool_calls);
}

static int64_t nu__left(int64_t max, int64_t used)
{
    if (max == NU_UNLIMITED)
        return NU_UNLIMITED;
    return used >= max ? 0 : max - used;
}

void nu__ledger_remaining(const nu_ledger_t *l, nu_budget_t *out)
{
    nu_budget_t used;

    nu__ledger_committed(l, &used);
    out->usd = isinf(l->max.usd) ? INFINITY
             : (used.usd >= l->max.usd ? 0.0 : l->max.usd - used.usd);
    out->input_tokens = nu__left(l->max.input_tokens, used.input_tokens);
    out->output_tokens = nu__left(l->max.output_tokens, used.output_tokens);
    out->tool_calls = nu__left(l->max.tool_calls, used.tool_calls);
}

bool nu__ledger_reserve(nu_ledger_t *l, const nu_budget_t *cost)
{
    nu_budget_t left;

    nu__ledger_remaining(l, &left);
    if (cost->usd > left.usd || cost->input_tokens > left.input_tokens ||
        cost->output_tokens > left.output_tokens ||
        cost->tool_calls > left.tool_calls)
        return false;

    l->reserved.usd += cost->usd;
    l->reserved.input_tokens += cost->input_tokens;
    l->reserved.output_tokens += cost->output_tokens;
    l->reserved.tool_calls += cost->tool_calls;
    return true;
}

void nu__ledger_settle(nu_ledger_t *l, const nu_budget_t *reserved,
                       const nu_budget_t *actual)
{
    l->reserved.usd -= reserved->usd;
    l->reserved.input_tokens -= reserved->input_tokens;
    l->reserved.output_tokens -= reserved->output_tokens;
    l->reserved.tool_calls -= reserved->tool_calls;

    l->spent.usd += actual->usd;
    l->spent.input_tokens = nu__sat_add(l->spent.input_tokens,
                                        actual->input_tokens);
    l->spent.output_tokens = nu__sat_add(l->spent.output_tokens,
                                         actual->output_tokens);
    l->spent.tool_calls = nu__sat_add(l->spent.tool_calls, actual->tool_calls);
}

bool nu__budget_valid_charge(double usd, int64_t in, int64_t out)
{
    return isfinite(usd) && usd >= 0 && in >= 0 && out >= 0;
}

bool nu__ledger_fits(const nu_ledger_t *l, const nu_budget_t *amount)
{
    nu_budget_t left;

    nu__ledger_remaining(l, &left);
    return (isinf(amount->usd) || amount->usd <= left.usd) &&
           (amount->input_tokens == NU_UNLIMITED ||
            amount->input_tokens <= left.input_tokens) &&
           (amount->output_tokens == NU_UNLIMITED ||
            amount->output_tokens <= left.output_tokens) &&
           (amount->tool_calls == NU_UNLIMITED ||
            amount->tool_calls <= left.tool_calls);
}

/* sign is +1 to carve, -1 to give back; unlimited dimensions are skipped. */
static void nu__ledger_adjust_carve(nu_ledger_t *l, const nu_budget_t *amount,
                                    int sign)
{
    if (!isinf(amount->usd))
        l->carved.usd += sign * amount->usd;
    if (amount->input_tokens != NU_UNLIMITED)
        l->carved.input_tokens += sign * amount->input_tokens;
    if (amount->output_tokens != NU_UNLIMITED)
        l->carved.output_tokens += sign * amount->output_tokens;
    if (amount->tool_calls != NU_UNLIMITED)
        l->carved.tool_calls += sign * amount->tool_calls;
}

void nu__ledger_carve(nu_ledger_t *l, const nu_budget_t *amount)
{
    nu__ledger_adjust_carve(l, amount, +1);
}

void nu__ledger_uncarve(nu_ledger_t *l, const nu_budget_t *amount,
                        const nu_budget_t *child_spent)
{
    static const nu_budget_t none = { 0, 0, 0, 0 };

    nu__ledger_adjust_carve(l, amount, -1);
    nu__ledger_settle(l, &none, child_spent);
}
