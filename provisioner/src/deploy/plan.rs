//! The container reconciler's decision: from what is on the node (the container, a staging
//! container) and the wanted spec, the one next step. `up` repeats observe → step until
//! [`Action::Done`], so an upgrade that crashed anywhere is resumed by the next run
//! (decision 3: create staging T, stop, move mp0 to T, destroy, create anew, move mp0 back,
//! destroy T).

/// A container as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub vmid: u32,
    /// Tagged `proximity`.
    pub ours: bool,
    pub spec: Option<String>,
    pub has_state: bool,
    /// For refusals: its name and tags.
    pub label: String,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The container matches the spec and holds the state volume.
    Done,
    /// Stop here and say why.
    Refuse(String),
    /// Create the container; `with_state`: with a new state volume (a first deployment).
    Create { with_state: bool },
    /// Create the staging container for an upgrade.
    CreateStaging,
    /// Stop (if running) and move `from`'s state volume to `to`.
    MoveState { from: u32, to: u32 },
    /// Stop (if running) and destroy this container.
    Destroy(u32),
}

/// Decides the next step towards container `vmid` with spec `want`.
pub fn next(vmid: u32, want: &str, ct: Option<&Seen>, staging: &[Seen]) -> Action {
    if let Some(ct) = ct.filter(|c| !c.ours) {
        return Action::Refuse(format!(
            "VMID {vmid} is {}, which is not a Proximity container (no `proximity` tag); it is left alone. \
             Choose another --vmid or move that container",
            ct.label
        ));
    }
    let matches = |c: &Seen| c.spec.as_deref() == Some(want);
    match staging {
        [] => match ct {
            None => Action::Create { with_state: true },
            Some(c) if !c.has_state => Action::Refuse(format!(
                "container {vmid} is ours but has no state volume mp0 and no staging container holds it; \
                 restore it from a backup, or run `proximity down` and `up` to start with fresh state"
            )),
            Some(c) if matches(c) => Action::Done,
            Some(_) => Action::CreateStaging,
        },
        [t] if t.has_state => match ct {
            None => Action::Create { with_state: false },
            Some(c) if c.has_state => Action::Refuse(format!(
                "both container {vmid} and its staging container {} hold a state volume; keep the right one \
                 (detach or destroy the other by hand) and run again",
                t.vmid
            )),
            Some(c) if matches(c) => Action::MoveState { from: t.vmid, to: vmid },
            Some(_) => Action::Destroy(vmid),
        },
        [t] => match ct {
            None => Action::Destroy(t.vmid),
            Some(c) if !c.has_state => Action::Refuse(format!(
                "neither container {vmid} nor its staging container {} holds the state volume mp0; restore it \
                 from a backup, or run `proximity down` and `up` to start with fresh state",
                t.vmid
            )),
            Some(c) if matches(c) => Action::Destroy(t.vmid),
            Some(_) => Action::MoveState { from: vmid, to: t.vmid },
        },
        many => Action::Refuse(format!(
            "several staging containers serve VMID {vmid} ({}); destroy all but the one holding mp0 and run again",
            many.iter().map(|s| s.vmid.to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old";
    const NEW: &str = "new";

    fn ct(spec: &str, has_state: bool) -> Seen {
        Seen { vmid: 100, ours: true, spec: Some(spec.into()), has_state, label: "proximity".into() }
    }
    fn t(has_state: bool) -> Seen {
        Seen { vmid: 101, ours: true, spec: None, has_state, label: "proximity-staging".into() }
    }

    /// Runs the plan on a model of the node, as `up` does, returning the steps taken.
    fn run(mut main: Option<Seen>, mut staging: Vec<Seen>) -> (Vec<Action>, Option<Seen>, Vec<Seen>) {
        let mut steps = Vec::new();
        for _ in 0..20 {
            let action = next(100, NEW, main.as_ref(), &staging);
            steps.push(action.clone());
            match action {
                Action::Done | Action::Refuse(_) => break,
                Action::Create { with_state } => main = Some(ct(NEW, with_state)),
                Action::CreateStaging => staging.push(t(false)),
                Action::Destroy(100) => main = None,
                Action::Destroy(_) => staging.clear(),
                Action::MoveState { from: 100, .. } => {
                    if let (Some(m), Some(s)) = (main.as_mut(), staging.first_mut()) {
                        m.has_state = false;
                        s.has_state = true;
                    }
                }
                Action::MoveState { .. } => {
                    if let (Some(m), Some(s)) = (main.as_mut(), staging.first_mut()) {
                        m.has_state = true;
                        s.has_state = false;
                    }
                }
            }
        }
        (steps, main, staging)
    }

    #[test]
    fn fresh_same_and_upgrade() {
        let (steps, main, _) = run(None, vec![]);
        assert_eq!(steps, vec![Action::Create { with_state: true }, Action::Done]);
        assert_eq!(main, Some(ct(NEW, true)));
        assert_eq!(run(Some(ct(NEW, true)), vec![]).0, vec![Action::Done]);
        let (steps, main, staging) = run(Some(ct(OLD, true)), vec![]);
        assert_eq!(
            steps,
            vec![
                Action::CreateStaging,
                Action::MoveState { from: 100, to: 101 },
                Action::Destroy(100),
                Action::Create { with_state: false },
                Action::MoveState { from: 101, to: 100 },
                Action::Destroy(101),
                Action::Done,
            ]
        );
        assert_eq!((main, staging), (Some(ct(NEW, true)), vec![]));
    }

    #[test]
    fn every_crash_point_of_an_upgrade_resumes() {
        // The node after each step of the upgrade; each must end in the new container with state.
        let states = [
            (Some(ct(OLD, true)), vec![t(false)]),
            (Some(ct(OLD, false)), vec![t(true)]),
            (None, vec![t(true)]),
            (Some(ct(NEW, false)), vec![t(true)]),
            (Some(ct(NEW, true)), vec![t(false)]),
        ];
        for (main, staging) in states {
            let (steps, end, left) = run(main.clone(), staging.clone());
            assert_eq!(steps.last(), Some(&Action::Done), "from {main:?} {staging:?}: {steps:?}");
            assert_eq!((end, left), (Some(ct(NEW, true)), vec![]));
        }
    }

    #[test]
    fn refuses_what_is_not_ours_or_ambiguous() {
        let foreign =
            Seen { vmid: 100, ours: false, spec: None, has_state: true, label: "\"db\" (tags: prod)".into() };
        assert!(
            matches!(next(100, NEW, Some(&foreign), &[]), Action::Refuse(m) if m.contains("\"db\"") && m.contains("100"))
        );
        assert!(matches!(next(100, NEW, Some(&ct(NEW, false)), &[]), Action::Refuse(_)));
        assert!(matches!(next(100, NEW, Some(&ct(OLD, true)), &[t(true)]), Action::Refuse(_)));
        assert!(matches!(next(100, NEW, None, &[t(true), t(false)]), Action::Refuse(_)));
    }
}
