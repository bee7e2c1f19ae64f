//! Task reads for the activity pass: the Tasks on some Leads/Contacts created
//! since a time, with their `Description` — how the pass finds the Tasks an
//! interrupted write may already have created (`service::activity`).

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::{SOQL_BUDGET, SalesforceConnector, in_lists, soql_datetime};
use crate::ConnectorError;
use crmsync_core::activity::TaskRow;

impl SalesforceConnector {
    /// Tasks whose `WhoId` is one of `who_ids`, created at or after `since`
    /// (one SOQL query per chunk of ids; `Description` is read, not filtered,
    /// since Salesforce cannot filter long text).
    pub async fn tasks_of(
        &self,
        who_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<TaskRow>, ConnectorError> {
        let mut out = Vec::new();
        let since = soql_datetime(since);
        for list in in_lists(who_ids, SOQL_BUDGET) {
            let soql = format!(
                "SELECT Id, WhoId, Description FROM Task WHERE WhoId IN ({list}) AND CreatedDate >= {since}"
            );
            for r in self.query_all_pages(&soql).await? {
                let text = |k: &str| r.get(k).and_then(Json::as_str).unwrap_or_default().to_string();
                out.push(TaskRow { id: text("Id"), who_id: text("WhoId"), description: text("Description") });
            }
        }
        Ok(out)
    }
}
