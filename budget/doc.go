// Package budget bounds how much extra load retries and hedges may add to a
// dependency: a retry budget shared by the calls to it.
//
// A [Budget] is a quota of tokens. Every successful call earns a few
// ([Budget.Deposit]); every retry or hedge costs more ([Budget.TryWithdraw]),
// and one that succeeds gets its cost back ([Budget.Refund]). The level
// never exceeds the budget's capacity. With the defaults (capacity 500, a
// retry costs 5, a success earns 1):
//
//   - During a total outage no call succeeds, so nothing is earned: once
//     the capacity is spent (100 retries) every call makes one attempt and
//     no more, however many retries the retry policy allows.
//   - During a brownout the retries that succeed pay for themselves and
//     only the failed ones cost anything: with 30% of requests failing, a
//     call earns 1 token and its failed retries cost 5 × 0.13 on average,
//     so the budget stays full and every retry the policy wants is made.
//
// A plain percentage budget ("retries may add 20% of recent calls") cannot
// do both: in a 30% brownout it caps retries near a fifth of calls, and
// success near 88%, while in an outage it lets through 1.2 attempts per
// call for as long as the outage lasts.
//
// The retry and hedge policies take a Budget with retry.WithBudget and
// hedge.WithBudget. [New] makes one budget for every call that spends from
// it; [NewKeyed] makes one per key, by default per call target, so that
// one host's outage does not spend the retries of calls to the others
// (the policies reach a call's budget with [Budget.For]). The standard
// pipeline builds a keyed one by default. Over
// budget, the retry or hedge is not attempted and the caller gets the last
// attempt's outcome with a reason that matches [ErrExhausted].
//
// # Telemetry
//
// The level is reported as the observable gauge resilience.budget.tokens
// (for a keyed budget, see [NewKeyed]), and the capacity as
// resilience.budget.capacity (so that a dashboard shows the share left
// without a constant); the policies count each retry or hedge refused as the event
// budget_exhausted (see the module's docs/telemetry.md).
package budget
