//! Multi-turn chat sessions (`assistant-chat`) through an LLM gateway.

use super::{Gen, USERS};
use crate::models::{CLAUDE_HAIKU, CLAUDE_SONNET_4, GEMINI_FLASH, GPT_4O};
use crate::trace::{meta, msg, tags, template, tool_call, tool_result, Call, Ctx, Retry, ToolCall};
use crate::{CHAT_SESSIONS, MINUTE, SEC};
use serde_json::json;
use spanlens_core::{Link, Message, SpanId, SpanKind, TraceId};

/// (topic, turns as (user, assistant))
pub(crate) const CHATS: [(&str, [(&str, &str); 7]); 4] = [
    ("travel", [
        ("I'm planning four days in Lisbon in May. Which neighbourhoods should I stay in?", "For a first visit, Baixa/Chiado is central and walkable; Príncipe Real is quieter and leafy; Alfama is atmospheric but hilly."),
        ("Which of those is easiest without a car?", "Baixa/Chiado: the metro, trams 28 and 15 and the train to Belém and Cascais are all a short walk away."),
        ("Can you draft a day-by-day plan with one day trip?", "Day 1 Baixa and Alfama, day 2 Belém, day 3 Sintra (train from Rossio), day 4 LX Factory and a sunset at Miradouro da Senhora do Monte."),
        ("What's the weather usually like then?", "Mid-May averages 22 °C by day and 14 °C at night with little rain; bring a light jacket for the evenings."),
        ("Any restaurants near Príncipe Real for a birthday dinner?", "Try Cervejaria Ramiro for seafood or a tasting menu at Prado; book a week ahead for a Saturday."),
        ("How much should I budget per day?", "About €110–150 per person per day for a mid-range hotel share, meals, transport and one paid sight."),
        ("Great — summarise the plan as a checklist.", "☐ Book Baixa hotel ☐ Viva Viagem card ☐ Sintra train + Pena tickets ☐ Dinner reservation ☐ Light jacket."),
    ]),
    ("rust", [
        ("Why does the borrow checker complain when I push to a Vec while iterating over it?", "Iterating borrows the Vec immutably; push needs a mutable borrow and may reallocate, invalidating the iterator."),
        ("Show me the idiomatic fix.", "Collect what to add first (`let extra: Vec<_> = v.iter().filter(..).cloned().collect(); v.extend(extra);`), or loop over indices."),
        ("What about removing items while iterating?", "Use `v.retain(|x| keep(x))`, or `retain_mut` when you also need to modify the kept items."),
        ("Is retain O(n)?", "Yes: one pass, each kept element is moved at most once."),
        ("And for a HashMap?", "`HashMap::retain` works the same way; `extract_if` is there when you need the removed entries."),
        ("Can you write a test for that?", "Here is one: a #[test] that builds a map, retains the even keys and asserts the remaining keys and the length."),
        ("Thanks, that compiles now.", "Great! Consider clippy's `manual_retain` lint to catch the old pattern elsewhere."),
    ]),
    ("finance", [
        ("What's the difference between a Roth and a traditional IRA?", "Traditional: contributions may be deductible now and withdrawals are taxed. Roth: contributions are after-tax and qualified withdrawals are tax-free."),
        ("Which one makes sense if I expect a higher income later?", "Usually the Roth: you pay tax at today's lower rate."),
        ("What are this year's contribution limits?", "I checked the current IRS figures: the limit is $7,000, or $8,000 if you are 50 or older."),
        ("Can I have both?", "Yes, but the limit is shared across all your IRAs."),
        ("What if I earn too much for a Roth?", "A backdoor Roth (non-deductible traditional contribution, then conversion) is the common route; watch the pro-rata rule."),
        ("Summarise this for my notes.", "Roth if you expect higher taxes later, shared $7k limit, backdoor Roth above the income limit, mind pro-rata."),
        ("Thanks!", "You're welcome — not financial advice; a tax professional can check your situation."),
    ]),
    ("writing", [
        ("Help me write a short email declining a meeting politely.", "Hi Sam, thanks for the invite. I can't make Thursday's meeting, but I'm happy to review the notes and follow up by Friday."),
        ("Make it a bit warmer.", "Hi Sam, thank you so much for including me! Unfortunately Thursday doesn't work for me, but I'd love to catch up on the notes and share thoughts by Friday."),
        ("Now a version for a client.", "Dear Ms Patel, thank you for the invitation. I am unable to attend on Thursday; may I propose Monday at 10:00 instead?"),
        ("Translate the client version into German.", "Sehr geehrte Frau Patel, vielen Dank für die Einladung. Am Donnerstag kann ich leider nicht; darf ich Montag um 10:00 Uhr vorschlagen?"),
        ("Shorter please.", "Sehr geehrte Frau Patel, Donnerstag passt mir leider nicht – ginge Montag, 10:00 Uhr?"),
        ("Add a subject line.", "Betreff: Terminvorschlag – Montag, 10:00 Uhr"),
        ("Perfect.", "Glad it helps!"),
    ]),
];

impl Gen {
    /// A multi-turn chat session: 3–7 turns, one trace each, with a growing cached prefix.
    pub(crate) fn chat_session(&mut self, k: usize) {
        let user = USERS[k % USERS.len()];
        let (topic, turns) = self.rng.pick(&CHATS);
        let roll = self.rng.unit();
        let model = if roll < 0.4 {
            CLAUDE_HAIKU
        } else if roll < 0.7 {
            CLAUDE_SONNET_4
        } else if roll < 0.9 {
            GPT_4O
        } else {
            GEMINI_FLASH
        };
        let plan = self.rng.pick(&["free", "pro", "pro"]);
        let client = self.rng.pick(&["web", "ios", "android"]);
        let session = format!("chat_{}", self.rng.hex(12));
        let n = self.rng.range(3, 7) as usize;
        let gaps: Vec<u64> = (1..n)
            .map(|_| self.rng.range(20 * SEC, 6 * MINUTE))
            .collect();
        let mut at = self.place(k, CHAT_SESSIONS, gaps.iter().sum::<u64>() + 5 * MINUTE);
        let mut history: Vec<Message> = vec![msg(
            "system",
            "You are Acme Assistant, a concise and friendly helper.",
        )];
        let mut prev: Option<(TraceId, SpanId)> = None;
        let system_tokens = 1_450;
        let mut history_tokens = 0;
        // The question a turn asks: the next one after an answer, the same one again after a
        // failed turn (the user retries; the conversation never goes on past a missing answer).
        let mut asked = 0;
        for turn in 0..n {
            let (question, answer) = &turns[asked];
            if turn > 0 {
                at += gaps[turn - 1];
            }
            let ctx = Ctx {
                service: "assistant-chat",
                user: Some(user.to_string()),
                session: Some(session.clone()),
                tags: tags(&["chat", topic, plan]),
                metadata: meta(
                    json!({"plan": plan, "client": client, "turn": turn + 1, "app_version": "2.14.0"}),
                ),
                incident: false,
            };
            let mut t = self.trace(at);
            let root = t.open(None, "chat.turn", SpanKind::Agent, 0);
            if let Some((tid, sid)) = prev {
                t.spans[root].links.push(Link {
                    trace_id: tid,
                    span_id: sid,
                    attributes: meta(json!({"link.type": "previous_turn"})),
                });
            }
            t.input(root, json!(question));
            let dur = t.rng.range(20, 90);
            let g = t.guardrail(
                root,
                1,
                "input_moderation",
                dur,
                true,
                "no policy categories flagged",
            );
            history.push(msg("user", *question));
            let q_tokens = 10 + question.len() as u64 / 4;
            let input = system_tokens + history_tokens + q_tokens;
            let searches = t.rng.chance(0.3) || answer.contains("check");
            let mut c = Call::new(
                "chat.completion",
                model,
                input,
                10 + answer.len() as u64 / 3,
            );
            c.prefix = system_tokens + history_tokens;
            c.warm = turn > 0;
            c.temperature = 0.7;
            c.max_tokens = 1_024;
            c.messages = history.clone();
            c.prompt = (turn == 0).then(|| {
                template(
                    "chat/system",
                    "v3",
                    "You are Acme Assistant, a concise and friendly helper. The user is on the {{plan}} plan.",
                    json!({"plan": plan}),
                )
            });
            let roll = t.rng.unit();
            if roll < 0.04 {
                c.retry = Some(Retry {
                    fails: 3,
                    exhausted: true,
                    error_type: if model.provider == "anthropic" {
                        "OverloadedError"
                    } else {
                        "APIConnectionError"
                    },
                    message: if model.provider == "anthropic" {
                        "anthropic: 529 overloaded_error: Overloaded".into()
                    } else {
                        format!(
                            "{}: connection error: server closed the connection",
                            model.provider
                        )
                    },
                    attempt_ms: (400, 1_500),
                    backoff_ms: 500,
                    retry_after_ms: None,
                });
            }
            let first_end;
            let ok;
            if searches {
                let id = format!("call_{}", t.rng.hex(24));
                let args = json!({"query": question, "num_results": 5});
                c.output = t.rng.range(25, 60);
                c.reply = Message {
                    tool_calls: vec![tool_call(&id, "web_search", &args)],
                    ..Default::default()
                };
                let first = t.llm(root, g.end + 1, c);
                if first.ok {
                    let results = json!({"results": [
                        {"title": format!("{topic} guide"), "url": "https://example.com/guide"},
                        {"title": format!("{topic} FAQ"), "url": "https://example.org/faq"},
                    ]});
                    let s = t.tool(
                        root,
                        first.end + 1,
                        ToolCall {
                            name: "web_search",
                            description: "Searches the web",
                            args,
                            result: results.clone(),
                            duration_ms: (300, 1_500),
                            call_id: Some(id.clone()),
                            retry: None,
                        },
                    );
                    let mut c2 = Call::new(
                        "chat.completion",
                        model,
                        input + 120 + 400,
                        10 + answer.len() as u64 / 3,
                    );
                    c2.prefix = input;
                    c2.warm = true;
                    c2.temperature = 0.7;
                    c2.messages = vec![tool_result(&id, "web_search", &results)];
                    c2.reply = msg("assistant", *answer);
                    let second = t.llm(root, s.end + 1, c2);
                    first_end = second.end;
                    ok = second.ok;
                } else {
                    first_end = first.end;
                    ok = false;
                }
            } else {
                c.reply = msg("assistant", *answer);
                let d = t.llm(root, g.end + 1, c);
                first_end = d.end;
                ok = d.ok;
            }
            if ok {
                t.output(root, json!(answer));
                history.push(msg("assistant", *answer));
                asked += 1;
            } else {
                let (ty, m) = match model.provider {
                    "anthropic" => ("OverloadedError", "anthropic: 529 overloaded_error: Overloaded (gave up after 3 attempts)".to_string()),
                    p => ("APIConnectionError", format!("{p}: connection error: server closed the connection (gave up after 3 attempts)")),
                };
                t.fail(root, ty, m);
                history.pop();
            }
            history_tokens += q_tokens + if ok { 10 + answer.len() as u64 / 3 } else { 0 };
            t.close(root, first_end + 2);
            prev = Some((t.trace_id, t.spans[root].span_id));
            let spans = t.finish(&ctx);
            self.spans.extend(spans);
        }
    }
}
