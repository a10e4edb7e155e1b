//! What a target is sent, rendered once per notification so that every try sends the same
//! bytes: a JSON document for webhooks, a subject and a plain-text body for e-mail; and the
//! [`Channel`] that carries it to a receiver, whatever kind it is ([`super::webhook`],
//! [`super::email`]). A client chooses some of the text (a user name it tried): control
//! characters are taken out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::events::{Kind, Notice};

/// One notification, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The same for every try and every target: receivers de-duplicate on it.
    pub id: String,
    /// `connection_disabled`, ... or `digest`.
    pub kind: &'static str,
    /// One line: what happened to what.
    pub title: String,
    /// Plain text for a person.
    pub text: String,
    /// The webhook's body.
    pub json: Value,
}

/// How a message reaches a receiver; a target's delivery ([`super::target`]) tries it and
/// pauses between tries.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Sends `message` once; `attempt` counts the tries from 1. An error says whether trying
    /// again may work ([`super::error::Kind`]).
    async fn send(&self, message: &Message, attempt: u32) -> super::error::Result<()>;
}

/// The host this instance runs on, named in every message (several may share a store).
pub fn host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// `text` without control characters (line breaks become spaces).
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The one line saying what `notice` is about.
pub fn title(notice: &Notice) -> String {
    let s = clean(&notice.subject);
    match notice.kind {
        Kind::ConnectionDisabled => format!("SharePoint connection {s} disabled"),
        Kind::ConnectionEnabled => format!("SharePoint connection {s} enabled again"),
        Kind::SyncAborted => format!("sync job {s} aborted"),
        Kind::SyncPartial => format!("sync job {s} partly failed"),
        Kind::SyncRecovered => format!("sync job {s} recovered"),
        Kind::UserLocked => format!("user {s} locked out"),
    }
}

impl Message {
    /// `notice` as instance `host` sends it.
    pub fn of(notice: &Notice, host: &str) -> Message {
        let title = title(notice);
        let subject_type = notice.kind.subject();
        let (message, action) = (clean(&notice.message), clean(&notice.action));
        let time = rfc3339(notice.time);
        let text = format!(
            "{title}\n\n\
             What happened: {message}\n\
             What to do: {action}\n\n\
             {subject_type}: {subject}\n\
             time: {time}\n\
             host: {host}\n\
             event: {kind}, id {id}\n",
            subject = clean(&notice.subject),
            kind = notice.kind.as_str(),
            id = notice.id,
        );
        let json = json!({
            "id": notice.id,
            "kind": notice.kind.as_str(),
            "time": time,
            "subject": { "type": subject_type, "name": notice.subject },
            "title": title,
            "message": notice.message,
            "action": notice.action,
            "problem": notice.kind.is_problem(),
            "host": host,
        });
        Message {
            id: notice.id.clone(),
            kind: notice.kind.as_str(),
            title,
            text,
            json,
        }
    }

    /// A test notification for target `target`, sent by `spgate notify test` from `host`.
    pub fn test(target: &str, host: &str) -> Message {
        let id = uuid::Uuid::new_v4().to_string();
        let title = "test notification".to_string();
        let time = rfc3339(Utc::now());
        let message = format!(
            "spgate on {host} sent this to target {target} (spgate notify test): alerts will \
             reach you here"
        );
        let text =
            format!("{title}\n\n{message}.\n\ntime: {time}\nhost: {host}\nevent: test, id {id}\n");
        let json = json!({
            "id": id, "kind": "test", "time": time, "title": title, "message": message,
            "target": target, "problem": false, "host": host,
        });
        Message {
            id,
            kind: "test",
            title,
            text,
            json,
        }
    }

    /// The e-mail subject line.
    pub fn subject_line(&self) -> String {
        let mut line = format!("[spgate] {}", self.title);
        if line.chars().count() > 200 {
            line = line.chars().take(199).chain(['…']).collect();
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_renders_the_same_for_every_try_and_without_control_characters() {
        let notice = Notice::new(
            Kind::UserLocked,
            "mallory\r\nBcc: everyone@example.com",
            "5 failed logins",
            "block the address",
        );
        let one = Message::of(&notice, "gw1");
        assert_eq!(one, Message::of(&notice, "gw1"));
        assert_eq!(one.id, notice.id);
        assert!(!one.subject_line().contains(['\r', '\n']));
        assert!(one.subject_line().starts_with("[spgate] user mallory  Bcc"));
        assert_eq!(one.json["kind"], "user_locked");
        assert_eq!(one.json["subject"]["type"], "user");
        assert_eq!(one.json["problem"], true);
        assert!(one.text.contains("What to do: block the address"));
        assert!(one.text.contains(&format!("id {}", notice.id)));
    }
}
