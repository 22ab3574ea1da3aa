//! Velocity and ETA from a project's progress snapshots: the seed's "Expected Performance"
//! figures (active agents, velocity, ETA). Velocity is estimated hours finished per
//! wall-clock hour, so a fleet doing a day's estimate every hour runs at 24x.

use serde::{Deserialize, Serialize};

use super::model::{ProgressSnapshot, ProgressSummary};

/// Velocity is measured over the snapshots of the last day before the newest one: recent
/// enough to follow the fleet growing or shrinking, long enough to smooth a slow hour.
pub const VELOCITY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

const HOUR_MS: f64 = 60.0 * 60.0 * 1000.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub project_id: i64,
    /// Healthy agents now.
    pub active_agents: i64,
    pub total_hours: f64,
    pub done_hours: f64,
    pub remaining_hours: f64,
    /// Estimated hours done per wall-clock hour over the window; `null` until the window holds
    /// two snapshots taken at different times.
    pub velocity: Option<f64>,
    /// When the remaining hours are done at that velocity (Unix ms); `null` without a velocity
    /// or while it is zero. Now, when nothing remains.
    pub eta: Option<i64>,
    /// The first and last snapshot velocity was measured between (Unix ms).
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
}

impl Forecast {
    /// The forecast from `history` (oldest first) and the project's figures now.
    pub fn new(
        project_id: i64,
        history: &[ProgressSnapshot],
        now: &ProgressSummary,
        now_ms: i64,
    ) -> Forecast {
        let remaining_hours = (now.total_hours - now.done_hours).max(0.0);
        let window = history.last().map(|last| {
            let first = history
                .iter()
                .find(|snapshot| snapshot.created_at >= last.created_at - VELOCITY_WINDOW_MS)
                .unwrap_or(last);
            (first, last)
        });
        let velocity = window.and_then(|(first, last)| {
            let elapsed_ms = last.created_at - first.created_at;
            (elapsed_ms > 0)
                .then(|| (last.done_hours - first.done_hours) / (elapsed_ms as f64 / HOUR_MS))
        });
        let eta = match velocity {
            _ if remaining_hours <= 0.0 => Some(now_ms),
            Some(velocity) if velocity > 0.0 => {
                Some(now_ms + (remaining_hours / velocity * HOUR_MS).round() as i64)
            }
            _ => None,
        };
        Forecast {
            project_id,
            active_agents: now.active_agents,
            total_hours: now.total_hours,
            done_hours: now.done_hours,
            remaining_hours,
            velocity: velocity.map(|velocity| (velocity * 10.0).round() / 10.0),
            eta,
            window_start: window.map(|(first, _)| first.created_at),
            window_end: window.map(|(_, last)| last.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn snapshot(created_at: i64, done_hours: f64) -> ProgressSnapshot {
        ProgressSnapshot {
            id: created_at,
            project_id: 1,
            total_tasks: 27,
            done_tasks: 0,
            in_progress_tasks: 0,
            total_hours: 592.0,
            done_hours,
            active_agents: 16,
            created_at,
        }
    }

    fn summary(done_hours: f64) -> ProgressSummary {
        ProgressSummary {
            total_tasks: 27,
            pending_tasks: 0,
            ready_tasks: 0,
            in_progress_tasks: 0,
            review_tasks: 0,
            done_tasks: 0,
            blocked_tasks: 0,
            total_hours: 592.0,
            done_hours,
            percent: 0.0,
            active_agents: 16,
            epics: Vec::new(),
        }
    }

    #[test]
    fn velocity_is_hours_done_per_hour_within_the_last_day() {
        // Two days ago the fleet was slow; the last day it did 100 h in 5 h: 20x.
        let history = [
            snapshot(0, 0.0),
            snapshot(48 * HOUR, 40.0),
            snapshot(50 * HOUR, 100.0),
            snapshot(53 * HOUR, 140.0),
        ];
        let forecast = Forecast::new(1, &history, &summary(192.0), 54 * HOUR);
        assert_eq!(forecast.velocity, Some(20.0));
        assert_eq!(forecast.window_start, Some(48 * HOUR));
        assert_eq!(forecast.window_end, Some(53 * HOUR));
        assert_eq!(forecast.remaining_hours, 400.0);
        // 400 h left at 20x: 20 wall-clock hours from now.
        assert_eq!(forecast.eta, Some(74 * HOUR));
    }

    #[test]
    fn no_velocity_without_two_snapshots_apart_and_no_eta_while_stalled() {
        let lone = Forecast::new(1, &[snapshot(HOUR, 10.0)], &summary(10.0), 2 * HOUR);
        assert_eq!((lone.velocity, lone.eta), (None, None));
        let empty = Forecast::new(1, &[], &summary(0.0), HOUR);
        assert_eq!(
            (empty.velocity, empty.eta, empty.window_end),
            (None, None, None)
        );
        let stalled = Forecast::new(
            1,
            &[snapshot(0, 10.0), snapshot(HOUR, 10.0)],
            &summary(10.0),
            2 * HOUR,
        );
        assert_eq!((stalled.velocity, stalled.eta), (Some(0.0), None));
        let finished = Forecast::new(
            1,
            &[snapshot(0, 500.0), snapshot(HOUR, 592.0)],
            &summary(592.0),
            2 * HOUR,
        );
        assert_eq!(
            (finished.remaining_hours, finished.eta),
            (0.0, Some(2 * HOUR))
        );
    }
}
