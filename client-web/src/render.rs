//! Canvas 2D drawing: floor, walls, orbs, projectiles, players with names and health, and the
//! touch joystick. World units are drawn through one transform; text is drawn in screen space so
//! it stays crisp at any zoom and on high-DPI screens.

use std::f64::consts::TAU;

use glam::Vec2;
use shared::map::MapDef;
use shared::rules::{PLAYER_MAX_HP, PLAYER_RADIUS, PROJECTILE_RADIUS};
use shared::snapshot::NetId;
use web_sys::CanvasRenderingContext2d;

use crate::input::{STICK_RADIUS, TouchStick};
use crate::session::PlayerSprite;

/// Visible world width and height at which the view is fitted (always inside the server's
/// interest area, so nothing visible is ever missing).
const VIEW_W: f32 = 1800.0;
const VIEW_H: f32 = 1150.0;

#[derive(Debug, Clone, Copy)]
pub struct Camera {
    pub center: Vec2,
    /// CSS pixels per world unit.
    pub scale: f32,
    pub css: Vec2,
    pub dpr: f64,
}

impl Camera {
    pub fn new(css: Vec2, dpr: f64, center: Vec2) -> Camera {
        let scale = (css.x / VIEW_W).max(css.y / VIEW_H).max(0.05);
        Camera { center, scale, css, dpr }
    }

    pub fn to_screen(self, world: Vec2) -> Vec2 {
        (world - self.center) * self.scale + self.css / 2.0
    }

    pub fn to_world(self, screen: Vec2) -> Vec2 {
        (screen - self.css / 2.0) / self.scale + self.center
    }
}

/// Everything one frame draws.
pub struct FrameScene<'a> {
    pub map: &'a MapDef,
    pub orbs: &'a [(Vec2, u8)],
    pub projectiles: &'a [(Vec2, NetId)],
    pub players: &'a [PlayerSprite],
    pub name_of: &'a dyn Fn(NetId) -> String,
    pub stick: Option<TouchStick>,
    /// The right-hand finger: where it aims (and fires) from.
    pub aim_touch: Option<TouchStick>,
    /// A touch screen: the halves' roles are hinted while no finger is down.
    pub touch_device: bool,
}

pub fn player_color(id: NetId, own: bool) -> String {
    if own {
        return "#4dd0e1".to_string();
    }
    let hue = (id.0.wrapping_mul(137) % 360) as f32;
    format!("hsl({hue}, 65%, 58%)")
}

pub fn draw(ctx: &CanvasRenderingContext2d, camera: &Camera, scene: &FrameScene<'_>) {
    let dpr = camera.dpr;
    // Screen space: background.
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str("#0d1117");
    ctx.fill_rect(0.0, 0.0, f64::from(camera.css.x), f64::from(camera.css.y));

    // World space.
    let s = f64::from(camera.scale) * dpr;
    let origin = camera.to_screen(Vec2::ZERO);
    let _ = ctx.set_transform(s, 0.0, 0.0, s, f64::from(origin.x) * dpr, f64::from(origin.y) * dpr);
    let map = scene.map;
    ctx.set_fill_style_str("#161b22");
    ctx.fill_rect(0.0, 0.0, f64::from(map.width), f64::from(map.height));
    draw_grid(ctx, camera, map);
    ctx.set_fill_style_str("#30363d");
    ctx.set_stroke_style_str("#484f58");
    ctx.set_line_width(3.0);
    for wall in &map.walls {
        let (x, y, w, h) = (f64::from(wall.x), f64::from(wall.y), f64::from(wall.w), f64::from(wall.h));
        ctx.fill_rect(x, y, w, h);
        ctx.stroke_rect(x, y, w, h);
    }
    ctx.set_stroke_style_str("#6e7681");
    ctx.set_line_width(6.0);
    ctx.stroke_rect(0.0, 0.0, f64::from(map.width), f64::from(map.height));

    for (pos, value) in scene.orbs {
        let color = match value {
            1 => "#58a6ff",
            2 => "#3fb950",
            _ => "#f2cc60",
        };
        circle(ctx, *pos, 5.0 + 2.0 * f32::from(*value), color);
    }
    for (pos, owner) in scene.projectiles {
        let own = scene.players.iter().any(|p| p.own && p.id == *owner);
        circle(ctx, *pos, PROJECTILE_RADIUS, if own { "#e0f7fa" } else { "#ffa657" });
    }
    for player in scene.players {
        draw_player(ctx, player);
    }

    // Screen space: names and health bars.
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_font("600 13px system-ui, sans-serif");
    ctx.set_text_align("center");
    for player in scene.players {
        let screen = camera.to_screen(player.pos);
        let top = screen.y - (PLAYER_RADIUS + 10.0) * camera.scale - 6.0;
        if player.alive {
            let width = 44.0;
            let frac = f64::from(player.hp) / f64::from(PLAYER_MAX_HP);
            ctx.set_fill_style_str("rgba(0,0,0,0.6)");
            ctx.fill_rect(f64::from(screen.x) - width / 2.0, f64::from(top), width, 5.0);
            ctx.set_fill_style_str(if frac > 0.5 {
                "#3fb950"
            } else if frac > 0.25 {
                "#d29922"
            } else {
                "#f85149"
            });
            ctx.fill_rect(f64::from(screen.x) - width / 2.0, f64::from(top), width * frac, 5.0);
        }
        ctx.set_fill_style_str(if player.own { "#e6edf3" } else { "#c9d1d9" });
        let _ = ctx.fill_text(&(scene.name_of)(player.id), f64::from(screen.x), f64::from(top) - 5.0);
        if player.away {
            // Held for a reconnect: the entity stands still until its player is back.
            ctx.set_fill_style_str("#d29922");
            let below = screen.y + (PLAYER_RADIUS + 10.0) * camera.scale + 12.0;
            let _ = ctx.fill_text("reconnecting…", f64::from(screen.x), f64::from(below));
        }
    }
    draw_touch_controls(ctx, camera, scene);
}

/// The touch controls: the move stick under the left thumb, a firing reticle under the right
/// one, and while no thumb is down a faint hint of both areas.
fn draw_touch_controls(ctx: &CanvasRenderingContext2d, camera: &Camera, scene: &FrameScene<'_>) {
    let css = camera.css;
    if scene.touch_device && scene.stick.is_none() && scene.aim_touch.is_none() {
        ctx.set_stroke_style_str("rgba(255,255,255,0.18)");
        ctx.set_line_width(2.0);
        ctx.begin_path();
        let _ = ctx.arc(f64::from(css.x * 0.2), f64::from(css.y * 0.6), f64::from(STICK_RADIUS), 0.0, TAU);
        ctx.stroke();
        ctx.begin_path();
        let _ = ctx.arc(f64::from(css.x * 0.8), f64::from(css.y * 0.6), f64::from(STICK_RADIUS * 0.6), 0.0, TAU);
        ctx.stroke();
        ctx.set_fill_style_str("rgba(255,255,255,0.35)");
        ctx.set_text_align("center");
        let _ = ctx.fill_text("move", f64::from(css.x * 0.2), f64::from(css.y * 0.6) + 4.0);
        let _ = ctx.fill_text("aim + fire", f64::from(css.x * 0.8), f64::from(css.y * 0.6) + 4.0);
    }
    if let Some(aim) = scene.aim_touch {
        ctx.set_stroke_style_str("rgba(248,81,73,0.8)");
        ctx.set_line_width(3.0);
        ctx.begin_path();
        let _ = ctx.arc(f64::from(aim.current.x), f64::from(aim.current.y), 28.0, 0.0, TAU);
        ctx.stroke();
        for (dx, dy) in [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)] {
            ctx.begin_path();
            ctx.move_to(f64::from(aim.current.x) + dx * 16.0, f64::from(aim.current.y) + dy * 16.0);
            ctx.line_to(f64::from(aim.current.x) + dx * 40.0, f64::from(aim.current.y) + dy * 40.0);
            ctx.stroke();
        }
    }
    if let Some(stick) = scene.stick {
        ctx.set_stroke_style_str("rgba(255,255,255,0.35)");
        ctx.set_line_width(2.0);
        ctx.begin_path();
        let _ = ctx.arc(f64::from(stick.origin.x), f64::from(stick.origin.y), f64::from(STICK_RADIUS), 0.0, TAU);
        ctx.stroke();
        ctx.set_fill_style_str("rgba(255,255,255,0.35)");
        ctx.begin_path();
        let knob = stick.origin + (stick.current - stick.origin).clamp_length_max(STICK_RADIUS);
        let _ = ctx.arc(f64::from(knob.x), f64::from(knob.y), 22.0, 0.0, TAU);
        ctx.fill();
    }
}

fn draw_grid(ctx: &CanvasRenderingContext2d, camera: &Camera, map: &MapDef) {
    let min = camera.to_world(Vec2::ZERO).max(Vec2::ZERO);
    let max = camera.to_world(camera.css).min(Vec2::new(map.width, map.height));
    let step = 100.0;
    ctx.set_stroke_style_str("#1f252d");
    ctx.set_line_width(2.0);
    ctx.begin_path();
    let mut x = (min.x / step).ceil() * step;
    while x <= max.x {
        ctx.move_to(f64::from(x), f64::from(min.y));
        ctx.line_to(f64::from(x), f64::from(max.y));
        x += step;
    }
    let mut y = (min.y / step).ceil() * step;
    while y <= max.y {
        ctx.move_to(f64::from(min.x), f64::from(y));
        ctx.line_to(f64::from(max.x), f64::from(y));
        y += step;
    }
    ctx.stroke();
}

fn circle(ctx: &CanvasRenderingContext2d, pos: Vec2, radius: f32, color: &str) {
    ctx.set_fill_style_str(color);
    ctx.begin_path();
    let _ = ctx.arc(f64::from(pos.x), f64::from(pos.y), f64::from(radius), 0.0, TAU);
    ctx.fill();
}

fn draw_player(ctx: &CanvasRenderingContext2d, player: &PlayerSprite) {
    let (x, y) = (f64::from(player.pos.x), f64::from(player.pos.y));
    let r = f64::from(PLAYER_RADIUS);
    if !player.alive || player.away {
        ctx.set_global_alpha(0.35);
    }
    // Barrel.
    let dir = Vec2::from_angle(player.aim);
    ctx.set_stroke_style_str(if player.firing { "#ffdd99" } else { "#8b949e" });
    ctx.set_line_width(9.0);
    ctx.begin_path();
    ctx.move_to(x, y);
    ctx.line_to(x + f64::from(dir.x) * r * 1.7, y + f64::from(dir.y) * r * 1.7);
    ctx.stroke();
    // Body.
    let color = if player.hit { "#ff7b72".to_string() } else { player_color(player.id, player.own) };
    ctx.set_fill_style_str(&color);
    ctx.begin_path();
    let _ = ctx.arc(x, y, r, 0.0, TAU);
    ctx.fill();
    ctx.set_line_width(if player.own { 4.0 } else { 2.5 });
    ctx.set_stroke_style_str(if player.own { "#ffffff" } else { "#0d1117" });
    ctx.stroke();
    ctx.set_global_alpha(1.0);
}
