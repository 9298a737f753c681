//! Query-string parsing shared by the list, the stream and the bulk actions: task filters and
//! `<N>m|h|d` windows.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use super::error::ApiError;
use crate::history::TaskFilter;
use crate::task::TaskStatus;

pub(crate) fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, detail)
}

/// Parses `<N>m`, `<N>h` or `<N>d` (N a whole number) into a duration.
pub(crate) fn parse_window(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let unit = raw.chars().last()?;
    let n: u64 = raw[..raw.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

/// A window parameter: `<N>m|h|d`, or `all` (`None`).
pub(crate) fn window_param(key: &str, raw: &str) -> Result<Option<Duration>, ApiError> {
    if raw == "all" {
        return Ok(None);
    }
    parse_window(raw).map(Some).ok_or_else(|| {
        bad_request(format!(
            "`{key}` must be a window like `30m`, `6h` or `7d`, or `all`; got `{raw}`"
        ))
    })
}

/// A point in time: RFC 3339, or a window back from now (`6h` means six hours ago).
fn time_param(key: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    parse_window(raw)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| {
            bad_request(format!(
                "`{key}` must be an RFC 3339 time or a window like `6h`; got `{raw}`"
            ))
        })
}

/// Builds a filter from `status`, `name`, `tag`, `q`, `since`, `until`, `limit`, `cursor`;
/// any other key is refused unless listed in `extra`.
pub(crate) fn filter(
    query: &HashMap<String, String>,
    extra: &[&str],
) -> Result<TaskFilter, ApiError> {
    let mut filter = TaskFilter::new();
    for (key, value) in query {
        if value.is_empty() && key != "q" && key != "cursor" {
            continue;
        }
        match key.as_str() {
            "status" => {
                filter = filter.status(
                    value
                        .parse::<TaskStatus>()
                        .map_err(|e| bad_request(e.to_string()))?,
                )
            }
            "name" => filter = filter.name(value.clone()),
            "tag" => filter = filter.tag(value.clone()),
            "q" if !value.is_empty() => filter = filter.q(value.clone()),
            "q" => {}
            "since" => filter = filter.since(time_param(key, value)?),
            "until" => filter = filter.until(time_param(key, value)?),
            "cursor" if !value.is_empty() => filter = filter.cursor(value.clone()),
            "cursor" => {}
            "limit" => match value.parse::<usize>() {
                Ok(limit @ 1..=TaskFilter::MAX_LIMIT) => filter = filter.limit(limit),
                _ => {
                    return Err(bad_request(format!(
                        "`limit` must be a whole number from 1 to {}, got `{value}`",
                        TaskFilter::MAX_LIMIT
                    )));
                }
            },
            other if extra.contains(&other) => {}
            other => {
                return Err(bad_request(format!(
                    "unknown query parameter `{other}`; expected one of status, name, tag, q, since, until, limit, cursor{}",
                    extra.iter().map(|e| format!(", {e}")).collect::<String>()
                )));
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_window("6h"), Some(Duration::from_secs(21_600)));
        assert_eq!(parse_window("2d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "h", "6", "6s", "-1h", "1.5h", "6hh", "é"] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
        assert!(window_param("since", "all").is_ok_and(|w| w.is_none()));
        assert!(window_param("since", "yesterday").is_err());
    }
}
