//! Which app answers which call: ordered rules on the call's virtual number
//! and/or subaccount, and a default app.

use serde::{Deserialize, Serialize};

use crate::protocol::CallAction;
use crate::protocol::rules::{is_e164, same_number};

/// The routing table (`GET`/`PUT /routes`, `[routes]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// The app answering calls no rule matches. Without one, a host with a
    /// single app routes every call to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_app: Option<String>,
    /// Rules, in order; the first match wins.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
}

/// One routing rule. With both `number` and `sub_account`, both must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// A virtual number, E.164 with or without `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// An 8x8 subaccount id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_account: Option<String>,
    /// The app answering matching calls.
    pub app: String,
}

impl RouteRule {
    fn matches_number(&self, event_number: &str) -> bool {
        self.number
            .as_deref()
            .is_some_and(|n| same_number(n, event_number))
    }

    fn matches_sub_account(&self, sub_account: &str) -> bool {
        self.sub_account.as_deref().is_none_or(|s| s == sub_account)
    }
}

impl RouteTable {
    /// Check the table: every rule names a number or a subaccount, numbers
    /// are E.164, and every app is one of `known_apps`.
    pub fn validate<'a>(&self, known_apps: impl Fn(&str) -> bool + 'a) -> Result<(), String> {
        if let Some(app) = &self.default_app
            && !known_apps(app)
        {
            return Err(format!("default_app: no app named {app:?}"));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.number.is_none() && rule.sub_account.is_none() {
                return Err(format!("rules[{i}]: give a number, a sub_account, or both"));
            }
            if let Some(number) = &rule.number
                && !is_e164(number)
            {
                return Err(format!(
                    "rules[{i}].number: {number:?} is not an E.164 number"
                ));
            }
            if let Some(sub) = &rule.sub_account
                && sub.is_empty()
            {
                return Err(format!("rules[{i}].sub_account: must not be empty"));
            }
            if !known_apps(&rule.app) {
                return Err(format!("rules[{i}].app: no app named {:?}", rule.app));
            }
        }
        Ok(())
    }

    /// The app for `event`: a rule on its virtual number (the destination of
    /// an inbound leg, the source of an outbound one), else a subaccount-only
    /// rule, else the default app. `only_app` is the single app, if exactly
    /// one exists.
    pub fn pick<'a>(&'a self, event: &CallAction, only_app: Option<&'a str>) -> Option<&'a str> {
        let number = event.virtual_number();
        let sub_account = event.sub_account_id.as_str();
        self.rules
            .iter()
            .find(|r| r.matches_number(number) && r.matches_sub_account(sub_account))
            .or_else(|| {
                self.rules
                    .iter()
                    .find(|r| r.number.is_none() && r.matches_sub_account(sub_account))
            })
            .map(|r| r.app.as_str())
            .or(self.default_app.as_deref())
            .or(only_app)
    }

    /// The rules (and default) that name `app`.
    pub fn mentions(&self, app: &str) -> bool {
        self.default_app.as_deref() == Some(app) || self.rules.iter().any(|r| r.app == app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::{CallDirection, Webhook, parse_webhook};

    fn event(direction: &str, source: &str, destination: &str, sub: &str) -> CallAction {
        let body = serde_json::json!({ "eventType": "CALL_ACTION", "payload": {
            "sessionId": "s", "callDirection": direction, "source": source,
            "destination": destination, "subAccountId": sub } });
        match parse_webhook(body.to_string().as_bytes()) {
            Ok(Webhook::CallAction(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    fn table() -> RouteTable {
        serde_json::from_value(serde_json::json!({
            "default_app": "fallback-menu",
            "rules": [
                { "sub_account": "acme", "app": "acme-menu" },
                { "number": "6568332048", "app": "bank-menu" },
                { "number": "+6511111111", "sub_account": "other", "app": "other-menu" }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn number_rules_win_over_subaccount_rules_then_default() {
        let t = table();
        let inbound = event("INBOUND", "+6591178965", "+6568332048", "acme");
        assert_eq!(inbound.call_direction, CallDirection::Inbound);
        assert_eq!(
            t.pick(&inbound, None),
            Some("bank-menu"),
            "VN matched with or without +"
        );
        let outbound = event("OUTBOUND", "6568332048", "+6591178965", "x");
        assert_eq!(
            t.pick(&outbound, None),
            Some("bank-menu"),
            "outbound: the VN is the source"
        );
        assert_eq!(
            t.pick(&event("INBOUND", "+1", "+6599999999", "acme"), None),
            Some("acme-menu")
        );
        assert_eq!(
            t.pick(&event("INBOUND", "+1", "+6511111111", "other"), None),
            Some("other-menu")
        );
        assert_eq!(
            t.pick(&event("INBOUND", "+1", "+6511111111", "nope"), None),
            Some("fallback-menu")
        );
        let no_default = RouteTable {
            default_app: None,
            ..t
        };
        assert_eq!(
            no_default.pick(&event("INBOUND", "+1", "+2", "z"), None),
            None
        );
        assert_eq!(
            no_default.pick(&event("INBOUND", "+1", "+2", "z"), Some("only")),
            Some("only")
        );
    }

    #[test]
    fn validation_names_the_rule() {
        let known = |a: &str| a != "ghost";
        assert!(table().validate(known).is_ok());
        let mut t = table();
        t.rules.push(RouteRule {
            number: None,
            sub_account: None,
            app: "x".into(),
        });
        assert_eq!(
            t.validate(known).unwrap_err(),
            "rules[3]: give a number, a sub_account, or both"
        );
        let mut t = table();
        t.rules[1].number = Some("call-me".into());
        assert!(
            t.validate(known)
                .unwrap_err()
                .starts_with("rules[1].number")
        );
        let mut t = table();
        t.rules[0].app = "ghost".into();
        assert_eq!(
            t.validate(known).unwrap_err(),
            "rules[0].app: no app named \"ghost\""
        );
    }
}
