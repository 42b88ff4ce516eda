//! `top`'s keys: what each one does to the view's state, apart from the
//! terminal so it is tested with made-up key presses.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::cmd::top::model::Order;

/// The keys, as the footer lists them.
pub const HELP: &str =
    "q quit   < > sort column   r reverse   / filter   space pause   a all interfaces";

/// What the view shows besides the rows.
#[derive(Debug, Clone)]
pub struct Ui {
    pub order: Order,
    pub paused: bool,
    /// The filter being typed after `/`; None when not typing one.
    pub editing: Option<String>,
}

/// What a key asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Redraw,
    Nothing,
}

impl Ui {
    /// Apply one terminal event.
    pub fn event(&mut self, event: &Event) -> Action {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
            Event::Resize(..) => Action::Redraw,
            _ => Action::Nothing,
        }
    }

    fn key(&mut self, key: &KeyEvent) -> Action {
        // In raw mode Ctrl-C is a key, not SIGINT.
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some(text) = self.editing.as_mut() {
            match key.code {
                KeyCode::Char(c) => text.push(c),
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Enter => self.editing = None,
                KeyCode::Esc => {
                    self.editing = None;
                    self.order.filter.clear();
                    return Action::Redraw;
                }
                _ => return Action::Nothing,
            }
            // The rows follow the filter as it is typed.
            if let Some(text) = &self.editing {
                self.order.filter = text.clone();
            }
            return Action::Redraw;
        }
        match key.code {
            KeyCode::Char('q' | 'Q') => return Action::Quit,
            KeyCode::Char('<' | ',') | KeyCode::Left => self.order.sort = self.order.sort.next(-1),
            KeyCode::Char('>' | '.') | KeyCode::Right => self.order.sort = self.order.sort.next(1),
            KeyCode::Char('r' | 'R') => self.order.reverse = !self.order.reverse,
            KeyCode::Char('/') => self.editing = Some(self.order.filter.clone()),
            KeyCode::Esc => self.order.filter.clear(),
            KeyCode::Char(' ' | 'p' | 'P') => self.paused = !self.paused,
            KeyCode::Char('a' | 'A') => self.order.all = !self.order.all,
            _ => return Action::Nothing,
        }
        Action::Redraw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::top::model::Column;

    fn press(ui: &mut Ui, code: KeyCode) -> Action {
        ui.event(&Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    fn typed(ui: &mut Ui, text: &str) {
        for c in text.chars() {
            press(ui, KeyCode::Char(c));
        }
    }

    fn ui() -> Ui {
        let order = Order { sort: Column::Cpu, reverse: false, filter: String::new(), all: false };
        Ui { order, paused: false, editing: None }
    }

    #[test]
    fn keys_sort_pause_and_quit() {
        let mut ui = ui();
        assert_eq!(press(&mut ui, KeyCode::Char('>')), Action::Redraw);
        assert_eq!(ui.order.sort, Column::Actions);
        typed(&mut ui, "<<r a p");
        assert_eq!(ui.order.sort, Column::NsPerRun);
        assert!(ui.order.reverse && ui.order.all);
        assert!(ui.paused, "space, space, p: paused, resumed, paused");
        assert_eq!(press(&mut ui, KeyCode::Char('x')), Action::Nothing);
        assert_eq!(press(&mut ui, KeyCode::Char('q')), Action::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(ui.event(&Event::Key(ctrl_c)), Action::Quit);
    }

    #[test]
    fn slash_types_a_filter_that_enter_keeps_and_esc_clears() {
        let mut ui = ui();
        typed(&mut ui, "/vexq");
        assert_eq!(ui.order.filter, "vexq", "q is text while typing");
        press(&mut ui, KeyCode::Backspace);
        press(&mut ui, KeyCode::Backspace);
        press(&mut ui, KeyCode::Enter);
        assert_eq!((ui.order.filter.as_str(), ui.editing.as_deref()), ("ve", None));
        typed(&mut ui, "/th");
        press(&mut ui, KeyCode::Esc);
        assert_eq!((ui.order.filter.as_str(), ui.editing.as_deref()), ("", None));
        assert_eq!(press(&mut ui, KeyCode::Char('q')), Action::Quit);
    }
}
