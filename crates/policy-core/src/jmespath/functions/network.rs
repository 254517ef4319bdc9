//! `is_external_url`: whether a URL points outside the cluster's private networks.
//!
//! Upstream resolves host names through DNS; the engine performs no I/O, so a host name counts
//! as external unless it is `localhost` (or under `.localhost`). IP addresses are judged exactly
//! as upstream does: loopback and private ranges are internal, everything else external.

use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use serde_json::Value;
use std::net::IpAddr;
use url::{Host, Url};

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "is_external_url",
    args: &[required(&[ArgType::String])],
    returns: &[ArgType::Boolean],
    note: "determine if a URL points to an external network address",
    handler: |args, _| {
        let input = string("is_external_url", args, 0)?;
        let host = match Url::parse(input) {
            Ok(url) => url.host().map(|host| host.to_owned()),
            // Go parses scheme-less input as a bare path, which has no host.
            Err(url::ParseError::RelativeUrlWithoutBase) => None,
            Err(error) => {
                return Err(JmesPathError::Function(format!("parse {input:?}: {error}")));
            }
        };
        let external = match host {
            Some(Host::Ipv4(ip)) => is_external_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_external_ip(IpAddr::V6(ip)),
            Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
                Ok(ip) => is_external_ip(ip),
                Err(_) => !(name == "localhost" || name.ends_with(".localhost")),
            },
            None => {
                return Err(JmesPathError::Function("lookup : no such host".to_owned()));
            }
        };
        Ok(Value::Bool(external))
    },
}];

/// Go's `!(ip.IsLoopback() || ip.IsPrivate())`.
fn is_external_ip(ip: IpAddr) -> bool {
    let internal = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_private(),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    };
    !internal
}

#[cfg(test)]
mod tests {
    use crate::jmespath::search;
    use serde_json::{Value, json};

    fn eval(url: &str) -> Result<Value, String> {
        search(&format!("is_external_url('{url}')"), &json!({})).map_err(|e| e.to_string())
    }

    #[test]
    fn private_and_loopback_addresses_are_internal() {
        for internal in [
            "http://127.0.0.1:8080/x",
            "https://10.0.0.5",
            "http://172.16.3.4",
            "http://192.168.1.1/path",
            "http://[::1]:80",
            "http://[fd00::1]",
            "http://localhost:3000",
        ] {
            assert_eq!(eval(internal), Ok(json!(false)), "{internal}");
        }
    }

    #[test]
    fn public_addresses_and_names_are_external() {
        for external in [
            "https://8.8.8.8",
            "http://[2001:4860::8888]",
            "https://kyverno.io/docs",
        ] {
            assert_eq!(eval(external), Ok(json!(true)), "{external}");
        }
    }

    #[test]
    fn urls_without_hosts_are_errors() {
        assert!(eval("not a url").is_err());
        assert!(search("is_external_url(`1`)", &json!({})).is_err());
    }
}
