//! Drills of the consortium changing itself through the nodes: the vaults' limits changed
//! and put back, and a member onboarded then covered. Each change is proposed by one
//! operator, listed by every node, refused when approved with a digest one byte off, and
//! carried out on every vault only once t operators approved it by its digest.

use super::*;
use alloy::providers::Provider;
use backstop_api::GovernanceChange;
use backstop_api::model::{ProposalStatus, ProposalView};
use backstop_contracts::bindings::IBackstopVault::Limits;
use backstop_contracts::testing::MemberSpec;

use crate::deploy::{ONBOARD_HOME, ONBOARD_MEMBER};
use crate::net::bounded;

/// How long the drills watch that a proposal nobody approved changes nothing.
const UNAPPROVED: Duration = Duration::from_secs(4);

/// `ListProposals` on node `i`.
async fn proposals(net: &Net, i: usize) -> Result<Vec<ProposalView>> {
    let n = net.node(i)?;
    bounded(
        &format!("ListProposals on {}", n.name),
        backstop_api::client::proposals(&n.api),
    )
    .await
}

/// Proposal `id` as node `i` lists it.
async fn proposal(net: &Net, i: usize, id: &str) -> Result<Option<ProposalView>> {
    Ok(proposals(net, i).await?.into_iter().find(|p| p.id == id))
}

/// Operator of node `node` proposes `change`; returns the proposal's id as the node
/// answered it.
pub(super) async fn propose(
    net: &Net,
    r: &Report,
    node: usize,
    chain_id: Option<u64>,
    change: GovernanceChange,
) -> Result<String> {
    let what = change.to_string();
    let answer = net
        .admin(node, &AdminRequest::Propose { chain_id, change })
        .await?;
    r.step(format!("operator of node-{node} proposes to {what}"));
    r.note(format!("-> {answer}"));
    answer
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .context("no proposal id in the answer")
}

/// Every node lists proposal `id` open with the proposer's digest; returns node-0's view.
pub(super) async fn listed_everywhere(
    net: &Net,
    r: &mut Report,
    id: &str,
) -> Result<Option<ProposalView>> {
    let mut seen = None;
    let listed = wait_until(PATIENCE, async || {
        let mut digests = Vec::new();
        for i in 0..net.state.nodes.len() {
            match proposal(net, i, id).await? {
                Some(p) if p.status == ProposalStatus::Open => digests.push(p),
                _ => return Ok(false),
            }
        }
        let same = digests.iter().all(|p| p.digest == digests[0].digest);
        seen = digests.into_iter().next();
        Ok(same)
    })
    .await;
    r.check(
        listed,
        format!("every node lists proposal {id} open, with one digest"),
    );
    Ok(seen.filter(|_| listed))
}

/// An approval by node `node` with `digest` one byte off is refused, and the node does not
/// count as approving.
async fn off_by_one_refused(
    net: &Net,
    r: &mut Report,
    node: usize,
    p: &ProposalView,
) -> Result<()> {
    let id = parse_hash(&p.id)?;
    let mut digest = parse_hash(&p.digest)?;
    digest[31] ^= 1;
    let answer = net.admin(node, &AdminRequest::Approve { id, digest }).await;
    r.note(format!(
        "operator of node-{node} approves with a digest one byte off -> {}",
        answer
            .as_ref()
            .map_or_else(|e| format!("{e:#}"), |a| a.clone())
    ));
    let approved = proposal(net, node, &p.id)
        .await?
        .is_some_and(|v| v.approved_here);
    r.check(
        answer.is_err_and(|e| format!("{e:#}").contains("is not proposal")) && !approved,
        format!("node-{node} refused the approval of a digest one byte off and signed nothing"),
    );
    Ok(())
}

/// Operators of `approvers` approve proposal `p` by its digest.
pub(super) async fn approve(
    net: &Net,
    r: &Report,
    approvers: &[usize],
    p: &ProposalView,
) -> Result<()> {
    let (id, digest) = (parse_hash(&p.id)?, parse_hash(&p.digest)?);
    for &node in approvers {
        let answer = net
            .admin(node, &AdminRequest::Approve { id, digest })
            .await?;
        r.step(format!(
            "operator of node-{node} approves digest {}",
            p.digest
        ));
        r.note(format!("-> {answer}"));
    }
    Ok(())
}

/// Waits until every node lists proposal `id` executed; prints each vault's transaction
/// and its gas.
pub(super) async fn executed_everywhere(net: &Net, r: &mut Report, id: &str) -> Result<bool> {
    let done = wait_until(PATIENCE, async || {
        for i in 0..net.state.nodes.len() {
            if !proposal(net, i, id)
                .await?
                .is_some_and(|p| p.status == ProposalStatus::Executed)
            {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await;
    r.check(done, format!("every node lists proposal {id} executed"));
    if let Some(p) = proposal(net, 0, id).await? {
        for c in &p.chains {
            let gas = match parse_hash(&c.tx_hash) {
                Ok(h) => receipt_gas(net, c.chain_id, h).await?,
                Err(_) => None,
            };
            r.note(format!(
                "chain {}: {} signatures seen of {} needed, {} in {} (gas {})",
                c.chain_id,
                c.signatures,
                c.quorum,
                p.kind,
                c.tx_hash,
                gas.map_or("unknown".to_owned(), |g| g.to_string())
            ));
        }
    }
    Ok(done)
}

async fn receipt_gas(net: &Net, chain_id: u64, tx: [u8; 32]) -> Result<Option<u64>> {
    let receipt = bounded(
        &format!("receipt of {} on chain {chain_id}", B256::from(tx)),
        net.provider(chain_id)?
            .get_transaction_receipt(B256::from(tx)),
    )
    .await?;
    Ok(receipt.map(|x| x.gas_used))
}

fn parse_hash(s: &str) -> Result<[u8; 32]> {
    backstop_api::model::parse_bytes32("hash", s).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn limits(net: &Net) -> Result<Vec<Limits>> {
    let mut out = Vec::new();
    for c in net.chain_ids() {
        let vault = net.vault(c)?;
        out.push(bounded(&format!("limits on chain {c}"), vault.limits().call()).await?);
    }
    Ok(out)
}

fn set_limits(l: &Limits) -> GovernanceChange {
    GovernanceChange::SetLimits {
        bucket_capacity: l.bucketCapacity,
        refill_per_second: l.refillPerSecond,
        reserve_floor: l.reserveFloor.to_be_bytes(),
        withdraw_cooldown_s: l.withdrawCooldown,
        emergency_duration_s: l.emergencyDuration,
    }
}

/// Proposes, checks the listing and the off-by-one refusal, lets the proposal sit
/// unapproved, then has `approvers` approve it; returns its id once every node lists it
/// executed (`None` otherwise).
async fn carry(
    net: &Net,
    r: &mut Report,
    proposer: usize,
    change: GovernanceChange,
    approvers: &[usize],
    unchanged: impl AsyncFn() -> Result<bool>,
) -> Result<Option<String>> {
    let id = propose(net, r, proposer, None, change).await?;
    let Some(p) = listed_everywhere(net, r, &id).await? else {
        return Ok(None);
    };
    off_by_one_refused(net, r, approvers[0], &p).await?;
    tokio::time::sleep(UNAPPROVED).await;
    r.check(
        unchanged().await?,
        format!(
            "after {} s without approvals no vault changed",
            UNAPPROVED.as_secs()
        ),
    );
    approve(net, r, approvers, &p).await?;
    Ok(executed_everywhere(net, r, &id).await?.then_some(id))
}

/// Change limits: the vaults' withdrawal cooldown and reserve floor are raised by
/// governance (node-1 proposes, nodes 0, 1 and 2 approve), then put back (node-2 proposes,
/// nodes 1, 2 and 3 approve). Invalid proposals are refused on the way.
pub(super) async fn change_limits(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let before = limits(net).await?;
    let Some(old) = before.first().cloned() else {
        bail!("no vault");
    };
    r.step(format!(
        "limits on every vault: bucket {} refill {}/s reserve floor {} cooldown {} s emergency {} s",
        pusd(U256::from(old.bucketCapacity)),
        pusd(U256::from(old.refillPerSecond)),
        pusd(old.reserveFloor),
        old.withdrawCooldown,
        old.emergencyDuration
    ));
    if !r.check(
        before.iter().all(|l| *l == old),
        "every vault has the same limits",
    ) {
        return Ok(None);
    }
    refuses_invalid(net, r).await?;

    let mut new = old.clone();
    new.withdrawCooldown += 60;
    new.reserveFloor += units(1_000);
    let wanted = new.clone();
    let unchanged = async || Ok(limits(net).await?.iter().all(|l| *l == old));
    if carry(net, r, 1, set_limits(&new), &[0, 1, 2], unchanged)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let after = limits(net).await?;
    r.check(
        after.iter().all(|l| *l == wanted),
        format!(
            "every vault shows cooldown {} s and reserve floor {} (cooldowns {:?})",
            wanted.withdrawCooldown,
            pusd(wanted.reserveFloor),
            after.iter().map(|l| l.withdrawCooldown).collect::<Vec<_>>()
        ),
    );

    r.step("putting the limits back, approved by another three operators");
    let back = async || Ok(limits(net).await?.iter().all(|l| *l == wanted));
    carry(net, r, 2, set_limits(&old), &[1, 2, 3], back).await?;
    let restored = limits(net).await?;
    r.check(
        restored.iter().all(|l| *l == old),
        "every vault has its original limits again",
    );
    Ok(None)
}

/// Proposals no vault or consortium should accept are refused by the node, naming why.
async fn refuses_invalid(net: &Net, r: &mut Report) -> Result<()> {
    let mut guardians: Vec<[u8; 20]> = net.state.nodes.iter().map(|n| n.guardian.0.0).collect();
    guardians.sort();
    let n = guardians.len();
    let cases = [
        (
            "a rotation whose t is not n - f",
            GovernanceChange::RotateGuardians {
                guardians,
                threshold: n as u8,
                pause_threshold: 1,
            },
            "the consortium requires",
        ),
        (
            "limits with no emergency duration",
            GovernanceChange::SetLimits {
                bucket_capacity: 1,
                refill_per_second: 1,
                reserve_floor: [0; 32],
                withdraw_cooldown_s: 0,
                emergency_duration_s: 0,
            },
            "emergency duration",
        ),
    ];
    for (what, change, reason) in cases {
        let answer = net
            .admin(
                0,
                &AdminRequest::Propose {
                    chain_id: None,
                    change,
                },
            )
            .await;
        let text = answer
            .as_ref()
            .map_or_else(|e| format!("{e:#}"), |a| a.clone());
        r.check(
            answer.is_err() && text.contains(reason),
            format!("node-0 refuses {what}: {text}"),
        );
    }
    Ok(())
}

/// Onboard a member: member-4 (in every node's configuration, on no vault) is proposed by
/// node-0, approved by nodes 0, 2 and 3, added on every vault; then its gap is covered. On
/// a testnet where an earlier run added it, the consortium first disables it (node-3
/// proposes, nodes 1, 2 and 3 approve): its cap, deductible and coverage limit go to zero.
pub(super) async fn onboard_member(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = ONBOARD_MEMBER;
    let member = net.member(m)?.clone();
    let spec = MemberSpec::new(m, ONBOARD_HOME);
    let caps = async |net: &Net| -> Result<Vec<Option<u128>>> {
        let mut out = Vec::new();
        for c in net.chain_ids() {
            let v = net.vault(c)?;
            let rec = bounded(&format!("member on chain {c}"), v.member(spec.id).call()).await?;
            out.push((rec.recipient == spec.recipient).then_some(rec.cap));
        }
        Ok(out)
    };
    if caps(net).await?.iter().all(|c| *c == Some(spec.cap)) {
        r.step(format!(
            "{} is on every vault from an earlier run: the consortium disables it first",
            member.name
        ));
        let disable = GovernanceChange::DisableMember { member: spec.id.0 };
        let unchanged = async || Ok(caps(net).await?.iter().all(|c| *c == Some(spec.cap)));
        carry(net, r, 3, disable, &[1, 2, 3], unchanged).await?;
        let after = caps(net).await?;
        if !r.check(
            after.iter().all(|c| *c == Some(0)),
            format!(
                "{} is disabled on every vault (caps {after:?})",
                member.name
            ),
        ) {
            return Ok(None);
        }
    }
    let before = caps(net).await?;
    if !r.check(
        before.iter().all(|c| c.is_none_or(|cap| cap == 0)),
        format!(
            "{} is on no vault, or disabled (caps {before:?})",
            member.name
        ),
    ) {
        return Ok(None);
    }
    let change = GovernanceChange::SetMember {
        member: spec.id.0,
        recipient: spec.recipient.0.0,
        home_chain_id: spec.home_chain_id,
        cap: spec.cap,
        deductible: spec.deductible,
        coverage_limit: spec.coverage_limit,
        coverage_window_s: spec.coverage_window,
    };
    let unchanged = async || Ok(caps(net).await? == before);
    if carry(net, r, 0, change, &[0, 2, 3], unchanged)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let after = caps(net).await?;
    if !r.check(
        after.iter().all(|c| *c == Some(spec.cap)),
        format!(
            "{} is on every vault with cap {} ({after:?})",
            member.name,
            pusd(U256::from(spec.cap))
        ),
    ) {
        return Ok(None);
    }
    avoid_contagion(net, r, m).await?;
    let recipients = net.recipients(m).await?;
    let vaults = net.vault_balances().await?;
    let (seq, closed) = cover(net, r, m, units(2_100)).await?;
    if closed {
        let inc = api_incident(net, 0, m, seq).await?;
        check_payout(net, r, m, &inc, &recipients, Some(&vaults)).await?;
    }
    Ok(Some((m, seq)))
}
