//! `packages`: OS packages are installed. The package manager is chosen on the host from
//! /etc/os-release (apt on Debian/Ubuntu, dnf or yum on Amazon Linux/RHEL/Fedora); only what
//! is missing is installed, and nothing already installed is upgraded.

use super::{Action, Decision, Kind, PrepareCx, PrepareError, Probe, StepKind, tail};
use crate::transport::script::quote;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub names: Vec<String>,
}

impl Kind for Spec {
    const NAME: &'static str = "packages";

    fn target(&self) -> String {
        self.names.join(", ")
    }

    fn prepare(&self, _cx: &PrepareCx<'_>) -> Result<Box<dyn StepKind>, PrepareError> {
        Ok(Box::new(Desired::prepare(self)?))
    }
}

#[derive(Debug, Clone)]
pub struct Desired {
    names: Vec<String>,
}

impl Desired {
    pub fn prepare(spec: &Spec) -> Result<Desired, String> {
        if spec.names.is_empty() {
            return Err("`names` is empty: list the packages to install".into());
        }
        for n in &spec.names {
            if !n.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:_".contains(c))
            {
                return Err(format!("`{n}` is not a package name"));
            }
        }
        Ok(Desired {
            names: spec.names.clone(),
        })
    }

    fn names(&self) -> String {
        self.names
            .iter()
            .map(|n| quote(n).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Shell that sets `$mgr` (apt|dnf|yum|none) and `$missing` (space separated).
    fn detect(&self) -> String {
        format!(
            r#"ID=; ID_LIKE=
if [ -r /etc/os-release ]; then . /etc/os-release; fi
case " $ID $ID_LIKE " in
  *" debian "*|*" ubuntu "*) mgr=apt ;;
  *" rhel "*|*" fedora "*|*" centos "*|*" amzn "*) if command -v dnf >/dev/null 2>&1; then mgr=dnf; else mgr=yum; fi ;;
  *) if command -v apt-get >/dev/null 2>&1; then mgr=apt; elif command -v dnf >/dev/null 2>&1; then mgr=dnf; elif command -v yum >/dev/null 2>&1; then mgr=yum; else mgr=none; fi ;;
esac
missing=
for p in {names}; do
  case $mgr in
    apt) [ "$(dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null)" = "install ok installed" ] || missing="$missing $p" ;;
    dnf|yum) rpm -q --quiet "$p" 2>/dev/null || missing="$missing $p" ;;
    *) missing="$missing $p" ;;
  esac
done
"#,
            names = self.names()
        )
    }
}

impl StepKind for Desired {
    fn probe(&self, _check: bool) -> Option<String> {
        Some(format!(
            "{}printf 'os=%s\\nmgr=%s\\nmissing=%s\\n' \"$ID\" \"$mgr\" \"$missing\"",
            self.detect()
        ))
    }

    fn decide(&self, observed: Option<&Probe>) -> Decision {
        let p = observed.cloned().unwrap_or_default();
        let missing = p.field("missing").unwrap_or("").trim();
        match p.field("mgr") {
            Some("none") => Decision::Fail(format!(
                "no supported package manager (apt, dnf, yum) on this host (os: {})",
                p.field("os").unwrap_or("unknown")
            )),
            None => Decision::Fail(format!("could not inspect packages: {}", tail(&p.out, 3))),
            Some(mgr) if !missing.is_empty() => {
                Decision::change(format!("install {missing} ({mgr})"))
            }
            Some(_) => Decision::Ok(format!("{} installed", self.names.join(", "))),
        }
    }

    fn apply(&self) -> Action {
        // The script recomputes what is missing so it is safe to run again on its own.
        let script = format!(
            r#"{detect}[ -n "$missing" ] || exit 0
case $mgr in
  apt) export DEBIAN_FRONTEND=noninteractive
       apt-get update -q >/dev/null
       apt-get install -y -q --no-upgrade -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing ;;
  dnf) dnf install -y $missing ;;
  yum) yum install -y $missing ;;
  *) echo "no supported package manager on this host" >&2; exit 1 ;;
esac
"#,
            detect = self.detect()
        );
        Action::script(script)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Desired {
        Desired::prepare(&Spec {
            names: vec!["git".into(), "docker.io".into()],
        })
        .unwrap()
    }

    #[test]
    fn decides_from_missing_list() {
        let ok = Probe::with_out("os=debian\nmgr=apt\nmissing=\n");
        assert!(matches!(d().decide(Some(&ok)), Decision::Ok(_)));
        let miss = Probe::with_out("os=debian\nmgr=apt\nmissing= docker.io\n");
        assert_eq!(
            d().decide(Some(&miss)),
            Decision::change("install docker.io (apt)")
        );
        let none = Probe::with_out("os=alpine\nmgr=none\nmissing= git docker.io\n");
        assert!(matches!(d().decide(Some(&none)), Decision::Fail(_)));
    }

    #[test]
    fn rejects_bad_names() {
        assert!(
            Desired::prepare(&Spec {
                names: vec!["git; rm -rf /".into()]
            })
            .is_err()
        );
        assert!(Desired::prepare(&Spec { names: vec![] }).is_err());
    }

    #[test]
    fn scripts_choose_manager_from_os_release() {
        let s = d().apply().script;
        assert!(s.contains(". /etc/os-release"));
        assert!(s.contains("apt-get install -y -q --no-upgrade"));
        assert!(s.contains("dnf install -y $missing"));
    }
}
