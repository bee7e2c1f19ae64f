//! What a connection syncs, as the engine sees it: built by the service from
//! the config and the marketing connector's [`Capabilities`].

use std::time::Duration;

use crmsync_core::{Capabilities, MarketingApi, System};

/// What a connection syncs, for the engine.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub name: String,
    /// The marketing platform's system (records written there say so).
    pub marketing_system: System,
    /// Salesforce objects synced (Account, Lead, Contact).
    pub objects: Vec<String>,
    /// The marketing object Leads and Contacts become (`contact`, `member`).
    pub marketing_object: String,
    /// The marketing object Accounts become, if the platform has accounts.
    pub account_object: Option<String>,
    /// Records read per change page.
    pub page_size: usize,
    /// Tag added to marketing records created from Salesforce, if any
    /// (platforms with tags).
    pub created_tag: Option<String>,
    /// Tag added to marketing records pushed to Salesforce, if any.
    pub pushed_tag: Option<String>,
    /// Where to write the sync status and the marketing id on the Salesforce record.
    pub write_back: Option<WriteBack>,
    /// The tag that flags a marketing record for creation in Salesforce: the
    /// engine reads it for unlinked records and shows it to the selector in
    /// their `tags` field.
    pub flag_tag: Option<String>,
    /// Company for a Lead created from a record without one (Salesforce
    /// requires it on Leads): `[not provided]` by default.
    pub lead_company: Option<String>,
    /// Marketing → Salesforce updates leave in batches of this many records…
    pub inbound_batch: usize,
    /// …or once the oldest has waited this long.
    pub inbound_window: Duration,
    /// What a deletion on one side does on the other.
    pub deletes: DeletePolicy,
    /// The Salesforce field that says a person opted out of email
    /// (`HasOptedOutOfEmail`), on platforms with consent: an unsubscribe on
    /// either side sets the other's, never the reverse.
    pub opt_out_field: Option<String>,
    /// Activity Tasks older than this are deleted from Salesforce (only the
    /// ones crmsync wrote); `None` keeps them.
    pub task_retention: Option<chrono::Duration>,
}

impl ConnectionSpec {
    /// A spec with the seed's defaults for this marketing platform: Lead and
    /// Contact, pages of 2,000, the seed's tags where the platform has tags,
    /// inbound batches of 100 records or 10 minutes.
    pub fn for_marketing(name: impl Into<String>, marketing: &dyn MarketingApi) -> Self {
        Self::new(name, marketing.system(), &marketing.capabilities())
    }

    /// [`ConnectionSpec::for_marketing`] from the platform's system and capabilities.
    pub fn new(name: impl Into<String>, system: System, caps: &Capabilities) -> Self {
        let tag = |t: &str| caps.tags.then(|| t.to_string());
        ConnectionSpec {
            name: name.into(),
            marketing_system: system,
            objects: vec!["Lead".into(), "Contact".into()],
            marketing_object: caps.people.to_string(),
            account_object: caps.accounts.map(str::to_string),
            page_size: 2000,
            created_tag: tag("created-from-salesforce"),
            pushed_tag: tag("added-to-salesforce"),
            write_back: None,
            flag_tag: None,
            lead_company: Some("[not provided]".into()),
            inbound_batch: 100,
            inbound_window: Duration::from_secs(600),
            deletes: DeletePolicy::default(),
            opt_out_field: caps.consent.then(|| "HasOptedOutOfEmail".to_string()),
            task_retention: None,
        }
    }

    /// The marketing object a Salesforce object syncs with: Accounts with
    /// the account object, people with the people object.
    pub fn marketing_object_for(&self, sf_object: &str) -> &str {
        match (&self.account_object, sf_object) {
            (Some(account), "Account") => account,
            _ => &self.marketing_object,
        }
    }

    /// The marketing object as links name it: `None` for the people object.
    pub fn remote_object(&self, marketing_object: &str) -> Option<String> {
        (marketing_object != self.marketing_object).then(|| marketing_object.to_string())
    }

    /// Whether this marketing object is the account object.
    pub fn is_account_object(&self, marketing_object: &str) -> bool {
        self.account_object.as_deref() == Some(marketing_object)
    }

    /// The marketing objects read for changes: people, and accounts when
    /// Salesforce Accounts sync.
    pub fn marketing_objects(&self) -> Vec<&str> {
        let mut objects = vec![self.marketing_object.as_str()];
        if let Some(account) = &self.account_object
            && self.objects.iter().any(|o| o == "Account")
        {
            objects.push(account);
        }
        objects
    }
}

/// What a linked record's deletion does to its counterpart (SPEC §3: per
/// direction). A Salesforce merge's loser counts as deleted when its master
/// already has a link of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Leave the counterpart as it is; only the link goes.
    #[default]
    Ignore,
    /// Unsubscribe the marketing record from its lists / mark the Salesforce
    /// record `HasOptedOutOfEmail`.
    Unsubscribe,
    /// Delete (or archive, where the platform only archives) the counterpart.
    Delete,
}

/// [`OnDelete`] per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePolicy {
    /// A Salesforce record deleted (or merged away) → its marketing record.
    #[serde(default)]
    pub to_marketing: OnDelete,
    /// A marketing record deleted (found by reconciliation) → its Salesforce record.
    #[serde(default)]
    pub to_salesforce: OnDelete,
}

/// The Salesforce fields crmsync writes back after each outbound sync.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// "Synced successfully", "Pending next sync", or the error.
    pub status_field: String,
    /// The marketing record's id.
    pub id_field: String,
    /// On Accounts: the account relation status and the marketing account's id.
    pub account_status_field: Option<String>,
    pub account_id_field: Option<String>,
}

impl WriteBack {
    /// Status and id fields on Leads and Contacts only.
    pub fn new(status_field: impl Into<String>, id_field: impl Into<String>) -> Self {
        WriteBack {
            status_field: status_field.into(),
            id_field: id_field.into(),
            account_status_field: None,
            account_id_field: None,
        }
    }

    /// The (status, id) fields of a Salesforce object, if it has any.
    pub fn fields(&self, sf_object: &str) -> Option<(&str, Option<&str>)> {
        if sf_object == "Account" {
            let status = self.account_status_field.as_deref()?;
            Some((status, self.account_id_field.as_deref()))
        } else {
            Some((&self.status_field, Some(&self.id_field)))
        }
    }
}

/// The status text written back after a successful sync.
pub const SYNCED: &str = "Synced successfully";

/// The status text written back while a record's write waits for a retry.
pub const PENDING: &str = "Pending next sync";
