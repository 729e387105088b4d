//! Keyboard, mouse and touch state. Listeners only record what is pressed and where; the app
//! turns that into one input per simulation tick.

use std::collections::HashSet;

use glam::Vec2;

/// Which pointer-like control drives aiming and firing on touch screens.
#[derive(Debug, Clone, Copy)]
pub struct TouchStick {
    pub id: i32,
    pub origin: Vec2,
    pub current: Vec2,
}

#[derive(Debug, Default)]
pub struct InputState {
    /// `KeyboardEvent.code` of held keys.
    pub keys: HashSet<String>,
    /// Mouse position in CSS pixels relative to the canvas.
    pub mouse: Option<Vec2>,
    pub mouse_down: bool,
    /// Left half of a touch screen: a virtual joystick.
    pub move_touch: Option<TouchStick>,
    /// Right half: aim at the finger and fire while it is down.
    pub aim_touch: Option<TouchStick>,
}

/// Joystick radius in CSS pixels: dragging this far is full speed.
pub const STICK_RADIUS: f32 = 60.0;

impl InputState {
    fn held(&self, codes: &[&str]) -> bool {
        codes.iter().any(|code| self.keys.contains(*code))
    }

    /// The movement stick from keys or the touch joystick.
    pub fn move_dir(&self) -> Vec2 {
        if let Some(stick) = self.move_touch {
            let drag = (stick.current - stick.origin) / STICK_RADIUS;
            return if drag.length() > 1.0 { drag.normalize() } else { drag };
        }
        let mut dir = Vec2::ZERO;
        if self.held(&["KeyW", "ArrowUp"]) {
            dir.y -= 1.0;
        }
        if self.held(&["KeyS", "ArrowDown"]) {
            dir.y += 1.0;
        }
        if self.held(&["KeyA", "ArrowLeft"]) {
            dir.x -= 1.0;
        }
        if self.held(&["KeyD", "ArrowRight"]) {
            dir.x += 1.0;
        }
        dir.normalize_or_zero()
    }

    pub fn firing(&self) -> bool {
        self.mouse_down || self.held(&["Space"]) || self.aim_touch.is_some()
    }

    /// Where the player aims, in CSS pixels (touch wins over mouse).
    pub fn aim_point(&self) -> Option<Vec2> {
        self.aim_touch.map(|t| t.current).or(self.mouse)
    }

    /// Forgets everything held (the window lost focus: keyups will not arrive).
    pub fn release_all(&mut self) {
        self.keys.clear();
        self.mouse_down = false;
        self.move_touch = None;
        self.aim_touch = None;
    }
}
