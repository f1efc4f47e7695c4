//! Customer support (`support-bot`): ticket threads, one trace per message.

use super::{Gen, USERS};
use crate::models::{CLAUDE_SONNET_4, GPT_4O, GPT_4O_MINI};
use crate::trace::{meta, msg, tags, template, tool_call, tool_result, Call, Ctx, Retry, ToolCall};
use crate::{HOUR, MINUTE, SEC, SUPPORT_THREADS};
use serde_json::json;
use spanlens_core::{Message, SpanKind};

/// A support ticket and how its thread goes. Every text answers the message before it: the
/// help article and the billing agent's finding are about this ticket, and the follow-ups come
/// in the order a customer would send them, each with the reply that answers it.
pub(crate) struct Ticket {
    pub(crate) message: &'static str,
    category: &'static str,
    priority: &'static str,
    /// Index in [`KB_ARTICLES`] of the article that answers the ticket.
    article: usize,
    /// What the billing agent concludes from the customer's invoices.
    billing: &'static str,
    /// The answer to the ticket itself.
    pub(crate) reply: &'static str,
    /// (customer's follow-up, support's answer), in thread order.
    pub(crate) follow_ups: [(&'static str, &'static str); 3],
}

pub(crate) const TICKETS: [Ticket; 10] = [
    Ticket {
        message: "I was charged twice for my March invoice (INV-20931, $49.00). Please refund the duplicate charge.",
        category: "billing",
        priority: "high",
        article: 0,
        billing: "Two charges of $49.00 for INV-20931 in the same period: a duplicate charge; propose a refund of one for approval.",
        reply: "I can see the second $49.00 charge for INV-20931, and our billing team has approved a refund of the duplicate; it will show on your statement within 5–10 business days.",
        follow_ups: [
            ("Can you confirm the refund went through? I don't see it on my statement yet.", "The $49.00 refund was issued on our side yesterday (reference RF-20931); banks take 5–10 business days to show it."),
            ("Will this happen again next month?", "No: the duplicate came from a payment retry while your card was being updated, and your billing profile is fixed, so next month's invoice is charged once."),
            ("Thanks, I can see it now.", "Great to hear it arrived! I'll close this ticket; reply here if anything else comes up."),
        ],
    },
    Ticket {
        message: "Since yesterday's update the 'Export to CSV' button on the reports page does nothing.",
        category: "bug",
        priority: "normal",
        article: 4,
        billing: "No billing issue: the invoices are regular and paid; nothing to refund.",
        reply: "Our engineers reproduced the broken 'Export to CSV' button from yesterday's update and a fix is rolling out today; until then, Reports → ⋯ → Download as XLSX works.",
        follow_ups: [
            ("Is the fix out yet? The button still does nothing for me.", "The fix went out at 14:00 UTC; reload the reports page with Ctrl+Shift+R so your browser picks up the new version."),
            ("It works after the reload, but the dates in the CSV are in UTC. Can they be local?", "Yes: Settings → Workspace → Time zone sets the zone exports use, and the CSV dates follow it."),
            ("Perfect, thanks.", "You're welcome — closing this ticket now."),
        ],
    },
    Ticket {
        message: "How do I add a second admin to our workspace? Settings only lets me invite members.",
        category: "how_to",
        priority: "low",
        article: 2,
        billing: "No billing issue: admins take no extra seat on this plan.",
        reply: "Invite the person as a member first, then open Settings → Members, click their name and change the role to Admin. Only the workspace owner can change roles.",
        follow_ups: [
            ("The role menu is greyed out for me.", "That means you are an admin rather than the owner: only the owner can promote members. Settings → Members marks the owner with a crown."),
            ("Our owner left the company. How do we transfer ownership?", "We can transfer it for you: reply from a company address with the new owner's email, and we'll verify the request and move ownership within one business day."),
            ("The new owner is dana@example.com.", "Done: dana@example.com now owns the workspace and can promote admins under Settings → Members."),
        ],
    },
    Ticket {
        message: "We're billed for 25 seats but only 18 people are active. Can you adjust our plan?",
        category: "billing",
        priority: "normal",
        article: 1,
        billing: "25 seats billed, 18 active users: reduce the plan to 18 seats; the 7 unused seats are credited pro rata.",
        reply: "I've reduced your plan to 18 seats; the 7 unused seats for the rest of this period come back as a prorated credit on your next invoice.",
        follow_ups: [
            ("How much will the credit be?", "7 seats at $12 a month for the 19 days left in the period: $53.20, shown as a credit line on your next invoice."),
            ("Can we add seats back later if we hire?", "Yes: add seats any time under Settings → Billing; a new seat is prorated from the day you add it."),
            ("Great, thanks!", "Happy to help — closing this ticket."),
        ],
    },
    Ticket {
        message: "Order A-77120 has shown 'label created' for six days. Where is my package?",
        category: "shipping",
        priority: "normal",
        article: 9,
        billing: "No billing issue: order A-77120 is paid.",
        reply: "The carrier confirmed that order A-77120 was picked up late and is now in transit; it should arrive within two business days.",
        follow_ups: [
            ("Tracking still says 'label created'.", "The carrier scanned the parcel at their depot this morning; their tracking page updates overnight, so it should read 'in transit' tomorrow."),
            ("Three more days and nothing has arrived.", "I'm sorry: the carrier has lost the parcel. We shipped a replacement by express today (tracking 1Z-88412) at no charge."),
            ("The replacement arrived, thank you.", "Glad it's there! Closing this ticket now."),
        ],
    },
    Ticket {
        message: "Can we switch from monthly to annual billing mid-cycle and still get the annual discount?",
        category: "billing",
        priority: "low",
        article: 6,
        billing: "Monthly plan, paid up: a switch to annual now credits the unused part of the month and gets the annual discount.",
        reply: "Yes: switch under Settings → Billing → Billing period. The unused part of this month is credited and the annual plan starts today with the 20% annual discount.",
        follow_ups: [
            ("Will we be charged for the full year today?", "Yes: the annual price is charged today, minus the credit for the unused part of this month."),
            ("Can we pay the annual invoice by bank transfer?", "Yes: choose 'Invoice' as the payment method when you switch, and the invoice is payable by transfer within 30 days."),
            ("Switched, thanks!", "Thanks for switching — your annual plan is active. Closing this ticket."),
        ],
    },
    Ticket {
        message: "SSO login fails for everyone with 'invalid SAML response' since 09:00 UTC.",
        category: "bug",
        priority: "urgent",
        article: 3,
        billing: "No billing issue: the enterprise plan with SSO is active and paid.",
        reply: "We found the cause: our SAML signing certificate was rotated at 09:00 UTC and your identity provider still trusts the old one. Upload the new certificate from Settings → Security → SSO and logins work again.",
        follow_ups: [
            ("We uploaded the new certificate but still get the error.", "Your identity provider caches our metadata: re-import it from the metadata URL (Settings → Security → SSO → Copy metadata URL), then try again."),
            ("That fixed it. Why weren't we warned about the rotation?", "You should have been: the notice only went to your billing contact. We've added your IT admins to security notices, so the next rotation reaches them 30 days ahead."),
            ("Thanks for the quick help.", "Thanks for your patience — closing this incident ticket."),
        ],
    },
    Ticket {
        message: "Please cancel our subscription at the end of the current period and send a final invoice.",
        category: "account",
        priority: "normal",
        article: 8,
        billing: "Subscription paid up to the end of the period: no refund due; the final invoice is issued on its last day.",
        reply: "Your subscription is set to end with the current period, and the final invoice will be emailed to you on its last day.",
        follow_ups: [
            ("Can we still export our data after the cancellation?", "Yes: for 30 days after the period ends you can export everything from Settings → Data → Export; after that it is deleted."),
            ("Actually, can we pause instead of cancelling?", "Yes: I've turned the cancellation into a three-month pause. You won't be billed during it and your data stays as it is."),
            ("Great, thank you.", "You're welcome — the pause is in place. Closing this ticket."),
        ],
    },
    Ticket {
        message: "The API returns 429 for us at only 20 requests per minute; our plan says 600.",
        category: "bug",
        priority: "high",
        article: 5,
        billing: "No billing issue: the plan with 600 requests per minute is active and paid.",
        reply: "Your API key kept the free tier's limit of 20 requests per minute after your upgrade; we've moved it to your plan's 600 per minute, effective now.",
        follow_ups: [
            ("Still seeing 429s on one of our keys.", "That key belongs to a second project that is still on the free plan: move it into your paid workspace under Settings → API keys and it gets 600 per minute too."),
            ("Can we get a higher limit for a launch next week?", "Yes: both keys get 1,500 requests per minute from Monday to Sunday next week, then return to 600."),
            ("Thanks, that's everything.", "You're welcome — good luck with the launch! Closing this ticket."),
        ],
    },
    Ticket {
        message: "Our VAT ID is missing from the last three invoices; accounting needs corrected copies.",
        category: "billing",
        priority: "normal",
        article: 7,
        billing: "The VAT ID was added after the last three invoices were issued: reissue them with it; no amount changes.",
        reply: "I've added your VAT ID to the last three invoices and reissued them; the corrected copies are under Settings → Billing → Invoices.",
        follow_ups: [
            ("Could you send the corrected invoices as PDF to finance@ as well?", "Done: the three corrected invoices went to finance@ as PDFs a minute ago."),
            ("Will future invoices include the VAT ID automatically?", "Yes: the VAT ID is now on your billing profile, so every future invoice carries it."),
            ("Thanks, that's all.", "You're welcome — closing this ticket."),
        ],
    },
];

const KB_ARTICLES: [&str; 10] = [
    "Refunds for duplicate charges",
    "Changing seat counts and proration",
    "Workspace roles: owners, admins, members",
    "Troubleshooting SAML SSO",
    "Exporting reports (CSV, XLSX)",
    "API rate limits by plan",
    "Switching billing periods",
    "Tax IDs on invoices",
    "Cancelling a subscription",
    "Shipping delays and tracking",
];

impl Gen {
    /// Customer support: a ticket thread of 2–4 messages, one trace each.
    pub(crate) fn support_thread(&mut self, k: usize) {
        let user = USERS[(k * 3 + 1) % USERS.len()];
        let ticket_no = 48_000 + k as u64 * 700 + self.rng.below(700); // unique per thread
        let ticket = &TICKETS[self.rng.index(TICKETS.len())];
        let (category, priority) = (ticket.category, ticket.priority);
        let tier = self.rng.pick(&["free", "pro", "pro", "enterprise"]);
        let channel = self.rng.pick(&["email", "web_chat", "slack"]);
        let customer = format!("cus_{}", self.rng.hex(14));
        let n = self.rng.range(2, 4);
        let gaps: Vec<u64> = (1..n)
            .map(|_| self.rng.range(20 * MINUTE, 8 * HOUR))
            .collect();
        let mut at = self.place(k, SUPPORT_THREADS, gaps.iter().sum());
        let mut asked = 0;
        for turn in 0..n as usize {
            if turn > 0 {
                at += gaps[turn - 1];
            }
            // The ticket, then its follow-ups in order, each answered as such; a message the
            // bot failed to answer is sent again rather than followed up as if answered.
            let (message, answer) = if asked == 0 {
                (
                    ticket.message,
                    format!(
                        "Hi, thanks for contacting us about this. {} Let us know if anything else comes up. — Acme Support",
                        ticket.reply
                    ),
                )
            } else {
                let (q, a) = ticket.follow_ups[asked - 1];
                (q, format!("Hi again! {a} — Acme Support"))
            };
            let mut t = vec!["support", category, "prod"];
            if matches!(priority, "high" | "urgent") {
                t.push("escalated");
            }
            let ctx = Ctx {
                service: "support-bot",
                user: Some(user.to_string()),
                session: Some(format!("ticket-{ticket_no}")),
                tags: tags(&t),
                metadata: meta(json!({
                    "ticket_id": format!("T-{ticket_no}"),
                    "channel": channel,
                    "customer_tier": tier,
                    "customer_id": customer,
                    "priority": priority,
                    "message_index": turn,
                })),
                incident: k == 2 && turn == 0,
            };
            if self.support_trace(at, &ctx, ticket, message, &answer, turn > 0) {
                asked += 1;
            }
        }
    }

    fn support_trace(
        &mut self,
        t0: u64,
        ctx: &Ctx,
        ticket: &Ticket,
        message: &str,
        reply: &str,
        warm: bool,
    ) -> bool {
        let (category, priority) = (ticket.category, ticket.priority);
        let mut t = self.trace(t0);
        let root = t.open(None, "support.handle_ticket", SpanKind::Pipeline, 0);
        t.input(
            root,
            json!({"ticket_id": ctx.metadata["ticket_id"], "message": message}),
        );
        let pii = t.rng.range(8, 35);
        let g = t.guardrail(
            root,
            2,
            "pii_redaction",
            pii,
            true,
            "no personal data beyond the account email",
        );

        // Triage.
        let triage = t.open(Some(root), "triage_agent", SpanKind::Agent, g.end + 1);
        let needs_billing = category == "billing" || t.rng.chance(0.4);
        let verdict =
            json!({"category": category, "priority": priority, "needs_billing": needs_billing});
        let mut c = Call::new(
            "triage.classify",
            GPT_4O_MINI,
            t.rng.range(520, 900),
            t.rng.range(30, 60),
        );
        c.temperature = 0.0;
        c.max_tokens = 200;
        c.json_schema = Some("triage_result");
        c.messages = vec![
            msg("system", "You are a support triage classifier. Answer with JSON {category, priority, needs_billing}."),
            msg("user", message),
        ];
        c.reply = msg("assistant", verdict.to_string());
        c.prompt = Some(template(
            "support/triage",
            "v4",
            "Classify the ticket below.\nCategories: billing, bug, how_to, shipping, account.\n\nTicket: {{ticket}}",
            json!({"ticket": message}),
        ));
        let cls = t.llm(triage, g.end + 3, c);
        let mut h_at = cls.end + 1;
        for to in ["researcher_agent", "billing_agent"] {
            let h = t.open(
                Some(triage),
                &format!("handoff → {to}"),
                SpanKind::Handoff,
                h_at,
            );
            t.attr(h, "handoff.from", json!("triage_agent"));
            t.attr(h, "handoff.to", json!(to));
            t.close(h, h_at + 1);
            h_at += 1;
        }
        t.output(triage, verdict);
        t.close(triage, h_at + 1);
        let fork = h_at + 2;

        // Researcher and billing agents run in parallel.
        let research_end = {
            let r = t.open(Some(root), "researcher_agent", SpanKind::Agent, fork);
            let system = 2_100;
            let lookup = if category == "shipping" {
                "orders.get_status"
            } else {
                "accounts.get_profile"
            };
            let (id1, id2) = (
                format!("toolu_{}", t.rng.hex(20)),
                format!("toolu_{}", t.rng.hex(20)),
            );
            let q = json!({"query": message, "top_k": 5});
            let look_args = json!({"customer_id": ctx.metadata["customer_id"]});
            let mut c = Call::new(
                "researcher.plan",
                CLAUDE_SONNET_4,
                system + t.rng.range(350, 900),
                t.rng.range(90, 180),
            );
            c.prefix = system;
            c.warm = warm || t.rng.chance(0.5);
            c.messages = vec![
                msg(
                    "system",
                    "You research support tickets using the knowledge base and account tools.",
                ),
                msg("user", message),
            ];
            c.reply = Message {
                content: Some("I'll check the knowledge base and the customer's account.".into()),
                tool_calls: vec![
                    tool_call(&id1, "kb.search", &q),
                    tool_call(&id2, lookup, &look_args),
                ],
                ..Default::default()
            };
            let plan = t.llm(r, fork + 2, c);
            let a = ticket.article;
            let hits = json!({"hits": [
                {"id": format!("kb-{}", 100 + a), "title": KB_ARTICLES[a], "score": 0.91},
                {"id": format!("kb-{}", 100 + (a + 3) % 10), "title": KB_ARTICLES[(a + 3) % 10], "score": 0.74},
            ]});
            let kb = t.tool(
                r,
                plan.end + 1,
                ToolCall {
                    name: "kb.search",
                    description: "Semantic search over help-centre articles",
                    args: q,
                    result: hits.clone(),
                    duration_ms: (120, 420),
                    call_id: Some(id1.clone()),
                    retry: None,
                },
            );
            let flaky = t.rng.chance(0.15);
            let fails = 1 + u64::from(t.rng.chance(0.3));
            let profile = json!({"plan": ctx.metadata["customer_tier"], "seats": t.rng.range(3, 40), "status": "active", "open_orders": t.rng.below(3)});
            let look = t.tool(
                r,
                plan.end + 2,
                ToolCall {
                    name: lookup,
                    description: "Reads the customer's account or order from the CRM",
                    args: look_args,
                    result: profile.clone(),
                    duration_ms: (60, 260),
                    call_id: Some(id2.clone()),
                    retry: flaky.then(|| Retry {
                        fails,
                        exhausted: false,
                        error_type: "TimeoutError",
                        message: "crm.internal: read timed out after 2000 ms".into(),
                        attempt_ms: (2000, 2000),
                        backoff_ms: 250,
                        retry_after_ms: None,
                    }),
                },
            );
            let after = kb.end.max(look.end) + 2;
            let prev = 2_100 + 900 + 180;
            let mut c = Call::new(
                "researcher.summarize",
                CLAUDE_SONNET_4,
                prev + t.rng.range(400, 1400),
                t.rng.range(150, 330),
            );
            c.prefix = system;
            c.warm = true;
            c.messages = vec![
                msg("user", message),
                tool_result(&id1, "kb.search", &hits),
                tool_result(&id2, lookup, &profile),
            ];
            c.reply = msg(
                "assistant",
                format!(
                    "Relevant article: \"{}\". Account is active; no blockers found.",
                    KB_ARTICLES[a]
                ),
            );
            let sum = t.llm(r, after, c);
            t.close(r, sum.end + 1);
            sum.end + 1
        };
        let billing_end = {
            let start = fork + t.rng.range(3, 25);
            let b = t.open(Some(root), "billing_agent", SpanKind::Agent, start);
            let id = format!("call_{}", t.rng.hex(24));
            let args = json!({"customer": ctx.metadata["customer_id"], "limit": 3});
            let mut c = Call::new(
                "billing.plan",
                GPT_4O,
                t.rng.range(1_100, 1_800),
                t.rng.range(30, 80),
            );
            c.prefix = 1_050;
            c.warm = warm || t.rng.chance(0.6);
            c.messages = vec![msg("system", "You are the billing specialist. Use Stripe tools; never issue refunds yourself."), msg("user", message)];
            c.reply = Message {
                tool_calls: vec![tool_call(&id, "stripe.list_invoices", &args)],
                ..Default::default()
            };
            let plan = t.llm(b, start + 2, c);
            let roll = t.rng.unit();
            let retry = if roll < 0.08 {
                Some(Retry {
                    fails: 3,
                    exhausted: true,
                    error_type: "TimeoutError",
                    message: "stripe: request to /v1/invoices timed out after 5000 ms".into(),
                    attempt_ms: (5000, 5000),
                    backoff_ms: 400,
                    retry_after_ms: None,
                })
            } else if roll < 0.20 {
                Some(Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "RateLimitError",
                    message: "stripe: 429 Too Many Requests (rate_limit)".into(),
                    attempt_ms: (40, 120),
                    backoff_ms: 1000,
                    retry_after_ms: Some(1000),
                })
            } else {
                None
            };
            let amount = t.rng.range(1_900, 49_900);
            let invoices = json!({"data": [
                {"id": format!("in_{}", t.rng.hex(12)), "amount_due": amount, "currency": "usd", "status": "paid"},
                {"id": format!("in_{}", t.rng.hex(12)), "amount_due": amount, "currency": "usd", "status": "paid"},
            ]});
            let inv = t.tool(
                b,
                plan.end + 1,
                ToolCall {
                    name: "stripe.list_invoices",
                    description: "Lists the customer's recent Stripe invoices",
                    args,
                    result: invoices.clone(),
                    duration_ms: (180, 900),
                    call_id: Some(id.clone()),
                    retry,
                },
            );
            if inv.ok {
                let mut c = Call::new(
                    "billing.assess",
                    GPT_4O,
                    t.rng.range(1_500, 2_400),
                    t.rng.range(80, 200),
                );
                c.prefix = 1_050;
                c.warm = true;
                c.messages = vec![
                    msg("user", message),
                    tool_result(&id, "stripe.list_invoices", &invoices),
                ];
                c.reply = msg("assistant", ticket.billing);
                let a = t.llm(b, inv.end + 2, c);
                t.close(b, a.end + 1);
                a.end + 1
            } else {
                t.fail(
                    b,
                    "ToolError",
                    "stripe.list_invoices failed after 3 attempts; continuing without billing data",
                );
                t.close(b, inv.end + 1);
                inv.end + 1
            }
        };

        // Responder drafts the reply once both are done.
        let join = research_end.max(billing_end) + 2;
        let resp = t.open(Some(root), "responder_agent", SpanKind::Agent, join);
        // One thread hits a rate-limit incident for sure, so the demo always shows one.
        let roll = t.rng.unit();
        let roll = if ctx.incident { 0.0 } else { roll };
        let retry = if roll < 0.05 {
            Some(Retry {
                fails: 4,
                exhausted: true,
                error_type: "RateLimitError",
                message: "anthropic: 429 rate_limit_error: output tokens per minute exceeded"
                    .into(),
                attempt_ms: (150, 400),
                backoff_ms: 2000,
                retry_after_ms: Some(t.rng.range(4, 12) * SEC),
            })
        } else if roll < 0.14 {
            Some(Retry {
                fails: 1,
                exhausted: false,
                error_type: "RateLimitError",
                message: "anthropic: 429 rate_limit_error: requests per minute exceeded".into(),
                attempt_ms: (150, 400),
                backoff_ms: 2000,
                retry_after_ms: Some(t.rng.range(2, 8) * SEC),
            })
        } else {
            None
        };
        let mut c = Call::new(
            "responder.draft_reply",
            CLAUDE_SONNET_4,
            t.rng.range(3_000, 6_000),
            t.rng.range(220, 480),
        );
        c.prefix = 2_600;
        c.warm = warm || t.rng.chance(0.7);
        c.temperature = 0.5;
        c.max_tokens = 800;
        c.messages = vec![msg("system", "Write a friendly, accurate reply. Do not promise refunds that billing did not propose."), msg("user", message)];
        c.reply = msg("assistant", reply);
        c.prompt = Some(template(
            "support/reply",
            "v7",
            "You are Acme's support agent. Research notes: {{research}}\nBilling notes: {{billing}}\nCustomer tier: {{tier}}\nWrite the reply to: {{ticket}}",
            json!({"research": "…", "billing": "…", "tier": ctx.metadata["customer_tier"], "ticket": message}),
        ));
        c.retry = retry;
        let draft = t.llm(resp, join + 2, c);
        let end = if draft.ok {
            let check = t.open(
                Some(resp),
                "policy_check",
                SpanKind::Guardrail,
                draft.end + 1,
            );
            let mut c = Call::new(
                "policy_check.judge",
                GPT_4O_MINI,
                t.rng.range(700, 1_100),
                t.rng.range(12, 30),
            );
            c.temperature = 0.0;
            c.messages = vec![
                msg(
                    "system",
                    "Does the reply follow the support policy? Answer PASS or FAIL with a reason.",
                ),
                msg("user", reply),
            ];
            let passed = t.rng.chance(0.93);
            c.reply = msg(
                "assistant",
                if passed {
                    "PASS"
                } else {
                    "FAIL: promises a refund timeline without approval"
                },
            );
            let j = t.llm(check, draft.end + 2, c);
            t.event(check, j.end + 1, "guardrail.verdict", json!({
                "guardrail.name": "policy_check",
                "guardrail.passed": passed,
                "guardrail.reason": if passed { "reply follows policy" } else { "promises a refund timeline without approval" },
            }));
            t.attr(check, "spanlens.guardrail.passed", json!(passed));
            t.close(check, j.end + 1);
            t.output(resp, json!(reply));
            t.close(resp, j.end + 2);
            t.output(root, json!({"reply": reply, "policy_passed": passed}));
            j.end + 3
        } else {
            t.fail(
                resp,
                "RateLimitError",
                "could not draft a reply: the model stayed rate limited",
            );
            t.close(resp, draft.end + 1);
            t.fail(root, "RateLimitError", "anthropic: 429 rate_limit_error: output tokens per minute exceeded (gave up after 4 attempts)");
            draft.end + 2
        };
        t.close(root, end);
        let spans = t.finish(ctx);
        self.spans.extend(spans);
        draft.ok
    }
}
