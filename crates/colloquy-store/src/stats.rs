//! A workspace's numbers by day, for the dashboard's home page: conversations started and
//! how they ended, tool calls with their failures and a latency histogram, test runs. Read
//! from the per-day tables of migration 0030 (a row per day, and per tool and day), so a
//! month costs the same few rows at a thousand conversations or a million.

use std::collections::BTreeMap;

use async_trait::async_trait;
use colloquy_core::ids::WorkspaceId;

use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all};
use crate::{SqlStore, StoreResult, ToolExecution};

/// Upper bounds of the latency histogram's buckets, in microseconds; the last bucket holds
/// everything slower.
pub const LATENCY_EDGES_US: [i64; 11] =
    [1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000];

/// Buckets of the histogram.
pub const BUCKETS: usize = LATENCY_EDGES_US.len() + 1;

/// The bucket of a latency.
pub fn bucket_of(latency_us: i64) -> usize {
    LATENCY_EDGES_US.iter().position(|edge| latency_us <= *edge).unwrap_or(BUCKETS - 1)
}

/// Adds a batch's counts to its days (audit writer, in the batch's transaction).
pub(crate) const TOOL_DAY_UPSERT: &str = "INSERT INTO tool_call_days (workspace_id, day, \
     tool_id, tool_name, calls, errors, latency_us_sum, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, \
     b10, b11) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
     $17, $18, $19) ON CONFLICT (workspace_id, day, tool_id) DO UPDATE SET \
     tool_name = excluded.tool_name, calls = tool_call_days.calls + excluded.calls, \
     errors = tool_call_days.errors + excluded.errors, \
     latency_us_sum = tool_call_days.latency_us_sum + excluded.latency_us_sum, \
     b0 = tool_call_days.b0 + excluded.b0, b1 = tool_call_days.b1 + excluded.b1, \
     b2 = tool_call_days.b2 + excluded.b2, b3 = tool_call_days.b3 + excluded.b3, \
     b4 = tool_call_days.b4 + excluded.b4, b5 = tool_call_days.b5 + excluded.b5, \
     b6 = tool_call_days.b6 + excluded.b6, b7 = tool_call_days.b7 + excluded.b7, \
     b8 = tool_call_days.b8 + excluded.b8, b9 = tool_call_days.b9 + excluded.b9, \
     b10 = tool_call_days.b10 + excluded.b10, b11 = tool_call_days.b11 + excluded.b11";

/// One tool's calls on one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DayCounts<'a> {
    pub(crate) tool_name: &'a str,
    pub(crate) calls: i64,
    pub(crate) errors: i64,
    pub(crate) latency_us_sum: i64,
    pub(crate) buckets: [i64; BUCKETS],
}

/// A batch of records counted by workspace, UTC day and tool.
pub(crate) fn tool_days(records: &[ToolExecution]) -> BTreeMap<(&str, i64, &str), DayCounts<'_>> {
    let mut days: BTreeMap<(&str, i64, &str), DayCounts<'_>> = BTreeMap::new();
    for r in records {
        let key =
            (r.workspace_id.as_str(), r.timestamp_ms.div_euclid(86_400_000), r.tool_id.as_str());
        let d = days.entry(key).or_default();
        d.tool_name = &r.tool_name;
        d.calls += 1;
        d.errors += i64::from(r.is_error);
        d.latency_us_sum += r.latency_us;
        d.buckets[bucket_of(r.latency_us)] += 1;
    }
    days
}

/// Conversations started on a day, and how many ended a success or a failure.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConversationDay {
    /// UTC days since the epoch.
    pub day: i64,
    pub started: i64,
    pub successes: i64,
    pub failures: i64,
}
sqlite_row!(ConversationDay { day, started, successes, failures });

/// One tool's calls over the days asked for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ToolDays {
    pub tool_id: String,
    pub tool_name: String,
    pub calls: i64,
    pub errors: i64,
    pub latency_us_sum: i64,
    pub b0: i64,
    pub b1: i64,
    pub b2: i64,
    pub b3: i64,
    pub b4: i64,
    pub b5: i64,
    pub b6: i64,
    pub b7: i64,
    pub b8: i64,
    pub b9: i64,
    pub b10: i64,
    pub b11: i64,
}
sqlite_row!(ToolDays {
    tool_id,
    tool_name,
    calls,
    errors,
    latency_us_sum,
    b0,
    b1,
    b2,
    b3,
    b4,
    b5,
    b6,
    b7,
    b8,
    b9,
    b10,
    b11
});

impl ToolDays {
    /// The histogram's counts, fastest bucket first.
    pub fn buckets(&self) -> [i64; BUCKETS] {
        [
            self.b0, self.b1, self.b2, self.b3, self.b4, self.b5, self.b6, self.b7, self.b8,
            self.b9, self.b10, self.b11,
        ]
    }

    /// The upper bound of the bucket holding the `q` quantile (`None` past the last edge, or
    /// with no calls): an estimate that never understates.
    pub fn quantile_bound_us(&self, q: f64) -> Option<i64> {
        let total: i64 = self.buckets().iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, count) in self.buckets().iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_EDGES_US.get(i).copied();
            }
        }
        None
    }
}

/// Test runs finished in a span of days.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct RunCounts {
    pub passed: i64,
    pub failed: i64,
}
sqlite_row!(RunCounts { passed, failed });

/// A workspace's numbers by day.
#[async_trait]
pub trait StatsStore {
    /// Conversations per day from `from_day` to `to_day` (UTC days since the epoch, both
    /// included); days with none are left out.
    async fn conversation_days(
        &self, workspace_id: &WorkspaceId, from_day: i64, to_day: i64,
    ) -> StoreResult<Vec<ConversationDay>>;

    /// Every tool called in those days, its counts summed over them.
    async fn tool_days(
        &self, workspace_id: &WorkspaceId, from_day: i64, to_day: i64,
    ) -> StoreResult<Vec<ToolDays>>;

    /// Test runs that passed and failed, created from `since` (unix seconds).
    async fn test_run_counts(
        &self, workspace_id: &WorkspaceId, since: i64,
    ) -> StoreResult<RunCounts>;
}

#[async_trait]
impl StatsStore for SqlStore {
    async fn conversation_days(
        &self, workspace_id: &WorkspaceId, from_day: i64, to_day: i64,
    ) -> StoreResult<Vec<ConversationDay>> {
        let q = Query::new(
            "SELECT day, started, successes, failures FROM conversation_days \
             WHERE workspace_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
            vec![Bind::Text(workspace_id.to_string()), Bind::Int(from_day), Bind::Int(to_day)],
        );
        Ok(fetch_all!(self, q)?)
    }

    async fn tool_days(
        &self, workspace_id: &WorkspaceId, from_day: i64, to_day: i64,
    ) -> StoreResult<Vec<ToolDays>> {
        let q = Query::new(
            "SELECT tool_id, MAX(tool_name) AS tool_name, CAST(SUM(calls) AS BIGINT) AS calls, \
             CAST(SUM(errors) AS BIGINT) AS errors, CAST(SUM(latency_us_sum) AS BIGINT) AS latency_us_sum, CAST(SUM(b0) AS BIGINT) AS b0, \
             CAST(SUM(b1) AS BIGINT) AS b1, CAST(SUM(b2) AS BIGINT) AS b2, CAST(SUM(b3) AS BIGINT) AS b3, CAST(SUM(b4) AS BIGINT) AS b4, CAST(SUM(b5) AS BIGINT) AS b5, \
             CAST(SUM(b6) AS BIGINT) AS b6, CAST(SUM(b7) AS BIGINT) AS b7, CAST(SUM(b8) AS BIGINT) AS b8, CAST(SUM(b9) AS BIGINT) AS b9, CAST(SUM(b10) AS BIGINT) AS b10, \
             CAST(SUM(b11) AS BIGINT) AS b11 FROM tool_call_days \
             WHERE workspace_id = $1 AND day >= $2 AND day <= $3 GROUP BY tool_id ORDER BY tool_id",
            vec![Bind::Text(workspace_id.to_string()), Bind::Int(from_day), Bind::Int(to_day)],
        );
        Ok(fetch_all!(self, q)?)
    }

    async fn test_run_counts(
        &self, workspace_id: &WorkspaceId, since: i64,
    ) -> StoreResult<RunCounts> {
        let q = Query::new(
            "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'passed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS passed, \
             CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed \
             FROM test_runs WHERE workspace_id = $1 AND created_at >= $2",
            vec![Bind::Text(workspace_id.to_string()), Bind::Int(since)],
        );
        Ok(fetch_all!(self, q)?.into_iter().next().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets_and_quantiles_never_understate() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(9_000_000), BUCKETS - 1);
        let mut t = ToolDays {
            tool_id: "t".into(),
            tool_name: "t".into(),
            calls: 100,
            errors: 0,
            latency_us_sum: 0,
            b0: 0,
            b1: 0,
            b2: 0,
            b3: 0,
            b4: 0,
            b5: 0,
            b6: 0,
            b7: 0,
            b8: 0,
            b9: 0,
            b10: 0,
            b11: 0,
        };
        assert_eq!(t.quantile_bound_us(0.95), None, "no calls, no figure");
        (t.b2, t.b6) = (94, 6);
        assert_eq!(t.quantile_bound_us(0.5), Some(5_000));
        assert_eq!(
            t.quantile_bound_us(0.95),
            Some(100_000),
            "the 95th call is in the 100 ms bucket"
        );
        t.b11 = 50;
        assert_eq!(t.quantile_bound_us(0.95), None, "slower than the last edge");
    }
}
