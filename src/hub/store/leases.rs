//! Leases: periodic work one replica does for all of them (the pull request poll), held by
//! whoever took it last until it lapses. Taking and renewing are one upsert, so two replicas
//! that ask at once cannot both win.

use std::time::Duration;

use super::{Store, StoreError, on_writer};
use crate::hub::model::now_ms;

impl Store {
    /// Takes lease `name` for `holder` for `term` from now, or renews it when `holder` has it;
    /// whether `holder` holds it now. Refused while another holder's term runs.
    pub async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        term: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(term.as_millis()).unwrap_or(i64::MAX));
        on_writer!(self, pool => {
            let held = sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                   expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            Ok(held.is_some())
        })
    }
}
