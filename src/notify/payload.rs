//! The body each channel takes.
//!
//! - Teams workflow webhooks ("Send webhook alerts to a channel", the Power Automate
//!   replacement for Office 365 connectors) take a message with one Adaptive Card attachment:
//!   `{"type": "message", "attachments": [{"contentType":
//!   "application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard}}]}` and answer 202
//!   (learn.microsoft.com: "Create incoming webhooks with Workflows for Microsoft Teams";
//!   adaptivecards.io schema 1.4).
//! - Slack incoming webhooks take `{"text": ..., "blocks": [...]}`, where `text` is the
//!   fallback for notifications, and answer 200 `ok`, or 400 `invalid_payload`, 403
//!   `action_prohibited`, 404 `no_service`, 410 `channel_is_archived` (docs.slack.dev:
//!   "Sending messages using incoming webhooks").
//! - A generic webhook gets the [`Notice`] as JSON.

use serde_json::{Value, json};

use super::{Channel, Notice};

pub(super) fn body(channel: Channel, notice: &Notice) -> Value {
    match channel {
        Channel::Teams => teams(notice),
        Channel::Slack => slack(notice),
        Channel::Webhook => serde_json::to_value(notice).unwrap_or(Value::Null),
    }
}

/// Label and value pairs shown under the headline.
fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Run", notice.run_id.clone())];
    if let Some(step) = &notice.failed_step {
        facts.push(("Failing step", format!("{}: {}", step.id, step.message)));
    }
    facts.push((
        "Iterations",
        format!("{} in {:.0} s", notice.iterations, notice.duration_seconds),
    ));
    if notice.rolled_back {
        facts.push(("Rollback", "restored what the run deployed".to_owned()));
    }
    if let Some(url) = &notice.pull_request {
        facts.push(("Pull request", url.clone()));
    }
    facts.push(("Reports", notice.artifacts.clone()));
    facts
}

fn teams(notice: &Notice) -> Value {
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": notice.headline(),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
            "color": if notice.succeeded() { "Good" } else { "Attention" },
        }),
        json!({
            "type": "FactSet",
            "facts": facts(notice)
                .into_iter()
                .map(|(title, value)| json!({"title": title, "value": value}))
                .collect::<Vec<_>>(),
        }),
    ];
    let mut actions = Vec::new();
    if let Some(link) = &notice.run_link {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Open the run", "url": link}));
    }
    if let Some(url) = &notice.pull_request {
        actions
            .push(json!({"type": "Action.OpenUrl", "title": "Open the pull request", "url": url}));
    }
    if !actions.is_empty() {
        body.push(json!({"type": "ActionSet", "actions": actions}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
            },
        }],
    })
}

fn slack(notice: &Notice) -> Value {
    let mut lines: Vec<String> = facts(notice)
        .into_iter()
        .map(|(title, value)| format!("*{title}:* {}", slack_escape(&value)))
        .collect();
    if let Some(link) = &notice.run_link {
        lines.push(format!("<{link}|Open the run>"));
    }
    let icon = if notice.succeeded() { "✅" } else { "🔴" };
    let headline = format!("{icon} {}", notice.headline());
    json!({
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", slack_escape(&headline))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
        ],
    })
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::FailedStep;

    fn gave_up() -> Notice {
        Notice {
            run_id: "run-7".into(),
            workflow: "fleet-deploy".into(),
            environment: Some("staging".into()),
            outcome: "failed".into(),
            events: vec!["give_up".into(), "rollback".into()],
            reason: "no progress".into(),
            failed_step: Some(FailedStep {
                id: "health".into(),
                message: "expected status 200, got 503".into(),
            }),
            iterations: 2,
            duration_seconds: 61.4,
            rolled_back: true,
            pull_request: None,
            run_link: Some("https://dev.azure.com/o/p/_build/results?buildId=9".into()),
            artifacts: "/a/run-7".into(),
        }
    }

    #[test]
    fn the_headline_says_what_happened() {
        assert_eq!(
            gave_up().headline(),
            "fleet-deploy on staging gave up and rolled back: no progress"
        );
        let succeeded = Notice {
            outcome: "succeeded".into(),
            environment: None,
            rolled_back: false,
            ..gave_up()
        };
        assert_eq!(succeeded.headline(), "fleet-deploy succeeded");
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_facts_and_a_link() {
        let body = body(Channel::Teams, &gave_up());
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["color"], "Attention");
        let facts = card["body"][1]["facts"].to_string();
        assert!(
            facts.contains("health: expected status 200, got 503"),
            "{facts}"
        );
        assert_eq!(
            card["body"][2]["actions"][0]["url"],
            "https://dev.azure.com/o/p/_build/results?buildId=9"
        );
    }

    #[test]
    fn slack_escapes_its_control_characters() {
        let notice = Notice {
            reason: "got <script> & more".into(),
            ..gave_up()
        };
        let body = body(Channel::Slack, &notice);
        let text = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("got &lt;script&gt; &amp; more"), "{text}");
        assert!(body["text"].as_str().unwrap().contains("gave up"));
    }
}
