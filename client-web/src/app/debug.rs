//! `arenaDebug()`: what the client sees, as JSON (tests and the curious read it).

use serde_json::json;

use super::state::{APP, App, ConnState};

/// `arenaDebug()`: what the client sees, as JSON.
pub fn debug_json() -> String {
    APP.with(|slot| match slot.borrow().as_ref().map(|app| app.try_borrow()) {
        Some(Ok(app)) => app.debug().to_string(),
        _ => "{\"state\":\"busy\"}".to_string(),
    })
}

impl App {
    pub(super) fn debug(&self) -> serde_json::Value {
        let state = match &self.state {
            ConnState::NameEntry => "name-entry",
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::Reconnecting { .. } => "reconnecting",
        };
        let why = match &self.state {
            ConnState::Reconnecting { why, .. } => Some(why.clone()),
            _ => None,
        };
        let mut value = json!({
            "state": state,
            "close_reason": why,
            "reconnect_attempt": self.reconnect_attempt,
            "losses": self.losses,
            "resumes": self.resumes,
            "backlog_skips": self.backlog_skips,
            "send_buffered": self.conn.as_ref().map_or(0, |conn| conn.buffered()),
            "name": self.name,
            "status_text": self.hud.status.text_content(),
            "overlay": self.overlay,
            "touch": {
                "device": self.touch_device,
                "moving": self.input.move_touch.is_some(),
                "aiming": self.input.aim_touch.is_some(),
                "help": self.hud.help.text_content(),
            },
            "frame": {
                "frames": self.frames.frames,
                "last_ms": self.frames.last(),
                "mean_ms": self.frames.mean(),
                "p50_ms": self.frames.quantile(0.5),
                "p99_ms": self.frames.quantile(0.99),
            },
        });
        self.debug_rooms(&mut value);
        if let Some(session) = &self.session {
            let players: Vec<_> = self
                .drawn_players
                .iter()
                .map(|p| json!({"id": p.id.0, "name": session.name_of(p.id), "x": p.pos.x, "y": p.pos.y, "alive": p.alive, "hp": p.hp, "own": p.own, "away": p.away}))
                .collect();
            let chat: Vec<_> = session.chat.iter().map(|l| json!({"from": l.from, "text": l.text})).collect();
            let kills: Vec<_> = session.kill_feed.iter().map(|l| l.text.clone()).collect();
            let notices: Vec<_> = session.notices.iter().map(|l| l.text.clone()).collect();
            let board: Vec<_> = session
                .leaderboard_rows()
                .into_iter()
                .map(|(rank, name, score, me)| json!({"rank": rank, "name": name, "score": score, "me": me}))
                .collect();
            value["player_id"] = json!(session.me().0);
            value["spectator"] = json!(session.is_spectator());
            value["replay"] = json!(session.replay.map(|r| json!({"tick": r.tick.0, "total_ticks": r.total_ticks, "paused": r.paused, "speed": r.speed, "epoch": r.epoch})));
            value["tick"] = json!(session.last_tick.map(|t| t.0));
            value["snapshots"] = json!(session.snapshots);
            value["decode_errors"] = json!(session.decode_errors);
            value["own"] = json!(session.own.map(
                |o| json!({"x": o.pos.x, "y": o.pos.y, "alive": o.alive, "hp": o.hp, "score": o.score, "rank": o.rank})
            ));
            value["players"] = json!(players);
            value["projectiles"] = json!(self.drawn_projectiles);
            value["orbs"] = json!(self.drawn_orbs);
            value["chat"] = json!(chat);
            value["kill_feed"] = json!(kills);
            value["notices"] = json!(notices);
            value["leaderboard"] = json!(board);
            value["feel"] = serde_json::to_value(&self.feel).unwrap_or_default();
            value["net"] = json!({
                "rtt_ms": session.clock.rtt_ms,
                "interp_delay_ticks": session.playout.delay_ticks(),
                "jitter_ticks": session.playout.jitter_ticks(),
                "render_tick": self.drawn_render_tick,
                "newest_tick": session.playout.newest_tick(),
                "extrapolated_ms": session.playout.extrapolated_ms,
                "correction_offset": session.predictor.correction_offset(),
                "steps_this_frame": self.steps_this_frame,
                "server_input_queue": session.pacer.last_report(),
                "corrections": std::mem::take(&mut *self.corrections.borrow_mut()),
                "input_rate": session.pacer.rate(),
                "prediction_error": session.predictor.last_error,
                "pending_inputs": session.predictor.pending(),
                "budget_bytes": self.graphs.snapshot_bytes.limit,
                "graph_samples": self.graphs.rtt.len(),
                "snapshots_over_budget": self.graphs.snapshot_bytes.over_limit(),
                "largest_snapshot_bytes": self.graphs.snapshot_bytes.samples().fold(0.0f32, f32::max),
            });
        }
        value
    }
}
