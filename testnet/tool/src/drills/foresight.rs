//! Drills of what the nodes see coming: an early warning before a member's gap opens, and
//! the pool's coverage under a stress scenario falling below 1 and recovering.

use super::*;

/// Steps of the margin erosion: the member's equity reaches zero after this many.
const EROSION_STEPS: u64 = 40;
/// Home-chain blocks the early warning must be on every vault before the gap opens.
const MIN_LEAD_BLOCKS: u64 = 5;
/// The testnet's scenario in which the pool token loses 70 % in a 50 % crash.
const SCENARIO: &str = "usd-crash-depeg";

/// Early warning: member-1's margin erodes block by block; the level-1 alert for it is on
/// every vault at least [`MIN_LEAD_BLOCKS`] home blocks before its gap opens, nothing is
/// paid or frozen meanwhile, and the draw then proceeds as usual.
pub(super) async fn early_warning(net: &mut Net, r: &mut Report) -> Result<Option<(usize, u64)>> {
    let m = 1;
    avoid_contagion(net, r, m).await?;
    let member = net.member(m)?.clone();
    let (_, liabilities) = net.solvency(m).await?;
    let equity = units(1_000);
    r.step(format!(
        "{} raises capital: its equity is {} (assets {} against liabilities {})",
        member.name,
        pusd(equity),
        pusd(liabilities + equity),
        pusd(liabilities)
    ));
    net.set_solvency(m, liabilities + equity, liabilities)
        .await?;
    // A few blocks of steady books before the erosion.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let step = equity / U256::from(EROSION_STEPS);
    let gap = units(2_100);
    let seq = net.next_seq(m).await?;
    let recipients = net.recipients(m).await?;
    r.step(format!(
        "{}'s margin erodes: its liabilities rise by {} a block from an equity of {}, then a loss \
         of {} opens its gap",
        member.name,
        pusd(step),
        pusd(equity),
        pusd(gap)
    ));
    let (alert_block, gap_block) = erode(net, r, m, step, gap).await?;
    let Some(gap_block) = gap_block else {
        r.check(false, "the gap opened within the drill's patience");
        return Ok(Some((m, seq)));
    };
    match alert_block {
        Some(at) => {
            let lead = gap_block.saturating_sub(at);
            r.check(
                at < gap_block && lead >= MIN_LEAD_BLOCKS,
                format!(
                    "the level-1 alert for {} was on every vault at home block {at}, {lead} blocks \
                     before its gap opened (block {gap_block}; at least {MIN_LEAD_BLOCKS} needed)",
                    member.name
                ),
            );
        }
        None => {
            r.check(
                false,
                "a level-1 alert for the member on every vault before its gap",
            );
        }
    }
    note_breakers(net, r).await?;
    r.check(
        net.frozen(m).await?.iter().all(|f| !f),
        "the early warning froze nothing",
    );
    r.step("the gap is open: the consortium covers it as usual");
    let hash = net.book(m, seq, PATIENCE).await?;
    if !r.check(
        hash.is_some(),
        format!(
            "the home vault registered draw ({}, seq {seq})",
            member.name
        ),
    ) {
        note_phases(net, r, m, seq).await;
        return Ok(Some((m, seq)));
    }
    let closed = closed_everywhere(net, m, seq, PATIENCE).await?;
    r.check(closed, "every node reports the incident closed (covered)");
    if closed {
        let inc = api_incident(net, 0, m, seq).await?;
        check_payout(net, r, m, &inc, &recipients, None).await?;
    }
    Ok(Some((m, seq)))
}

/// Raises member `m`'s liabilities by `step` a home block (one transaction mined in each)
/// until its equity is gone, then to a gap of `gap`; watches the member's alert on every
/// vault at each block. Returns the home block at which every vault showed the alert, and
/// the block the gap opened in.
async fn erode(
    net: &mut Net,
    r: &Report,
    m: usize,
    step: U256,
    gap: U256,
) -> Result<(Option<u64>, Option<u64>)> {
    let member = net.member(m)?.clone();
    let home = member.home_chain_id;
    let (assets, mut liabilities) = net.solvency(m).await?;
    let mut alert_block = None;
    let deadline = Instant::now() + 2 * PATIENCE;
    while Instant::now() < deadline {
        let head = net.head(home).await?;
        if alert_block.is_none() && net.alert_levels(member.id).await?.iter().all(|&l| l >= 1) {
            alert_block = Some(head);
            r.step(format!(
                "alert level 1 for {} on every vault at home block {head}",
                member.name
            ));
        }
        liabilities += step;
        if liabilities > assets {
            liabilities = assets + gap;
            net.troubled(m)?;
        }
        let tx = net.set_solvency(m, assets, liabilities).await?;
        if liabilities > assets {
            let block = net.block_of(home, tx).await?;
            r.step(format!(
                "the gap opens in home block {block} (setSolvency {tx})"
            ));
            return Ok((alert_block, Some(block)));
        }
    }
    Ok((alert_block, None))
}

/// One scenario of the stress report of node-0: (need, payable within 24 h, coverage bps).
async fn scenario(net: &Net) -> Result<(U256, U256, u64)> {
    let report = net::stress(&net.node(0)?.api).await?;
    let s = report
        .scenarios
        .iter()
        .find(|s| s.name == SCENARIO)
        .with_context(|| format!("node-0 reports no scenario {SCENARIO}"))?;
    Ok((
        amount(&s.need)?,
        amount(&s.payable_day)?,
        s.coverage_day_bps,
    ))
}

/// A coverage in basis points as a ratio.
fn ratio(bps: u64) -> String {
    format!("{}.{:02}", bps / 10_000, bps % 10_000 / 100)
}

/// Stress shortfall: member-2 reports a long exposure that, in the testnet's crash-and-depeg
/// scenario, needs a little less than the pool can pay within 24 hours. A draw of member-0
/// drains vault A: the scenario's coverage falls below 1, the pool's level-1 alert appears
/// on every vault; a deposit puts vault A back, coverage recovers and the alert is cleared.
pub(super) async fn stress_shortfall(
    net: &mut Net,
    r: &mut Report,
) -> Result<Option<(usize, u64)>> {
    let (exposed, drawer) = (2, 0);
    avoid_contagion(net, r, drawer).await?;
    let pool = pool_subject();
    let (need, payable, coverage) = scenario(net).await?;
    r.step(format!(
        "scenario {SCENARIO} (every price -50 %, the pool token -70 %): needs {}, the pool pays {} within 24 h (coverage {})",
        pusd(need),
        pusd(payable),
        ratio(coverage)
    ));
    // What the draw will take from the vaults, the home vault A first.
    let draw_gap = units(5_100);
    let drained = draw_gap - U256::from(MEMBER_DEDUCTIBLE);
    let depeg_kept = U256::from(3_000u64);
    let after = payable.saturating_sub(drained * depeg_kept / U256::from(10_000u64));
    // The exposure's need sits between what the pool pays after the draw and before it.
    let target = (payable + after) / U256::from(2u64);
    let add = target.saturating_sub(need);
    let (assets, liabilities) = net.solvency(exposed).await?;
    let equity = assets.saturating_sub(liabilities);
    // A 50 % fall of a position `delta` loses delta/2: need = delta/2 - equity - deductible.
    let delta = (add + equity + U256::from(MEMBER_DEDUCTIBLE)) * U256::from(2u64);
    let name = net.member(exposed)?.name.clone();
    r.step(format!(
        "{name} reports a long position of {} on its USD oracle (riskExposures)",
        pusd(delta)
    ));
    net.set_exposure(exposed, I256::from_raw(delta)).await?;
    let reported = wait_until(PATIENCE, async || Ok(scenario(net).await?.0 >= target)).await;
    let (need, payable, coverage) = scenario(net).await?;
    r.check(
        reported && coverage >= 10_000,
        format!(
            "the nodes project {name}'s gap: {SCENARIO} needs {}, the pool pays {} (coverage {} ≥ 1)",
            pusd(need),
            pusd(payable),
            ratio(coverage)
        ),
    );
    r.check(
        net.alert_levels(pool).await?.iter().all(|&l| l == 0),
        "no pool alert while coverage ≥ 1",
    );

    let (seq, closed) = cover(net, r, drawer, draw_gap).await?;
    if !closed {
        return Ok(Some((drawer, seq)));
    }
    // Once the nodes see member-0's books balanced, the need is the exposure's alone.
    let low = wait_until(PATIENCE, async || {
        let (need, _, coverage) = scenario(net).await?;
        Ok(need <= target && coverage < 10_000)
    })
    .await;
    let (need, payable, coverage) = scenario(net).await?;
    r.check(
        low,
        format!(
            "member-0 booked its payout; the draw drained the vaults: {SCENARIO} needs {} and the pool pays {}: coverage {} < 1",
            pusd(need),
            pusd(payable),
            ratio(coverage)
        ),
    );
    let raised = wait_until(PATIENCE, async || {
        Ok(net.alert_levels(pool).await?.iter().all(|&l| l >= 1))
    })
    .await;
    r.check(
        raised,
        format!(
            "the pool's alert is raised on every vault (levels {:?})",
            net.alert_levels(pool).await?
        ),
    );
    note_breakers(net, r).await?;

    let refill = drained + units(1_000);
    r.step(format!(
        "the consortium recapitalises vault {A}: a deposit of {}",
        pusd(refill)
    ));
    let tx = net.deposit(A, refill).await?;
    r.note(format!("deposit transaction {tx}"));
    let recovered = wait_until(PATIENCE, async || Ok(scenario(net).await?.2 >= 10_000)).await;
    let (need, payable, coverage) = scenario(net).await?;
    r.check(
        recovered,
        format!(
            "{SCENARIO} needs {} and the pool pays {} again: coverage {}",
            pusd(need),
            pusd(payable),
            ratio(coverage)
        ),
    );
    let cleared = wait_until(PATIENCE, async || {
        Ok(net.alert_levels(pool).await?.iter().all(|&l| l == 0))
    })
    .await;
    r.check(
        cleared,
        format!(
            "the nodes cleared the pool's alert themselves (levels {:?})",
            net.alert_levels(pool).await?
        ),
    );
    net.clear_exposures(exposed).await?;
    Ok(Some((drawer, seq)))
}
