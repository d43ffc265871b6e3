-- plan: initial schema
-- from: sha256:db7ed544a1c5066e2560872d6670c840295851dec0059b3fc50b5b276760da34
-- to:   sha256:2b4215fc87432c06c5e5beefcefb2dc85593206cfae00a158fb19d01106f3397
-- postgres: 15

create extension if not exists "uuid-ossp" with schema "public";

create type "public"."card_status" as enum ('NEW', 'LEARNING', 'REVIEW', 'MASTERED');

create table "public"."card_reviews" (
    "id" uuid not null default uuid_generate_v4(),
    "session_id" uuid not null,
    "flashcard_id" uuid not null,
    "user_id" uuid not null,
    "rating" smallint not null,
    "response_ms" integer,
    "reviewed_at" timestamp with time zone not null default now(),
    "previous_interval_days" integer not null,
    "new_interval_days" integer not null,
    "previous_ease_factor" numeric(4,2) not null,
    "new_ease_factor" numeric(4,2) not null
);

create table "public"."daily_study_stats" (
    "id" uuid not null default uuid_generate_v4(),
    "user_id" uuid not null,
    "day" date not null,
    "reviews" integer not null default 0,
    "correct" integer not null default 0,
    "minutes" integer not null default 0,
    "new_cards" integer not null default 0,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."deck_stats" (
    "id" uuid not null default uuid_generate_v4(),
    "deck_id" uuid not null,
    "card_count" integer not null default 0,
    "new_count" integer not null default 0,
    "learning_count" integer not null default 0,
    "review_count" integer not null default 0,
    "mastered_count" integer not null default 0,
    "total_reviews" integer not null default 0,
    "retention_rate" numeric(5,4),
    "last_studied_at" timestamp with time zone,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."deck_subscriptions" (
    "id" uuid not null default uuid_generate_v4(),
    "user_id" uuid not null,
    "deck_id" uuid not null,
    "notify_on_update" boolean not null default true,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."decks" (
    "id" uuid not null default uuid_generate_v4(),
    "owner_id" uuid not null,
    "title" character varying(200) not null,
    "description" text,
    "is_public" boolean not null default false,
    "tags" text[] not null default '{}'::text[],
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."flashcards" (
    "id" uuid not null default uuid_generate_v4(),
    "deck_id" uuid not null,
    "front" text not null,
    "back" text not null,
    "hint" text,
    "extra" jsonb not null default '{}'::jsonb,
    "status" card_status not null default 'NEW'::card_status,
    "ease_factor" numeric(4,2) not null default 2.5,
    "interval_days" integer not null default 0,
    "repetitions" integer not null default 0,
    "lapses" integer not null default 0,
    "due_at" timestamp with time zone not null default now(),
    "last_reviewed_at" timestamp with time zone,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."review_sessions" (
    "id" uuid not null default uuid_generate_v4(),
    "user_id" uuid not null,
    "deck_id" uuid,
    "started_at" timestamp with time zone not null default now(),
    "ended_at" timestamp with time zone,
    "cards_reviewed" integer not null default 0,
    "cards_correct" integer not null default 0,
    "summary" jsonb not null default '{}'::jsonb,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."user_sessions" (
    "id" uuid not null default uuid_generate_v4(),
    "user_id" uuid not null,
    "token_hash" character varying(128) not null,
    "expires_at" timestamp with time zone not null,
    "revoked_at" timestamp with time zone,
    "last_seen_at" timestamp with time zone,
    "ip_address" inet,
    "user_agent" text,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

create table "public"."users" (
    "id" uuid not null default uuid_generate_v4(),
    "email" character varying(320) not null,
    "password_hash" character varying(255) not null,
    "display_name" character varying(80) not null,
    "is_active" boolean not null default true,
    "email_verified_at" timestamp with time zone,
    "last_login_at" timestamp with time zone,
    "timezone" character varying(64) not null default 'UTC'::character varying,
    "daily_goal" integer not null default 20,
    "preferences" jsonb not null default '{}'::jsonb,
    "total_reviews" integer not null default 0,
    "current_streak" integer not null default 0,
    "longest_streak" integer not null default 0,
    "xp" bigint not null default 0,
    "created_at" timestamp with time zone not null default now(),
    "updated_at" timestamp with time zone not null default now()
);

CREATE INDEX ix_card_reviews_flashcard_id_reviewed_at ON public.card_reviews USING btree (flashcard_id, reviewed_at);

CREATE INDEX ix_card_reviews_session_id ON public.card_reviews USING btree (session_id);

CREATE INDEX ix_card_reviews_user_id_reviewed_at ON public.card_reviews USING btree (user_id, reviewed_at);

CREATE INDEX ix_deck_subscriptions_deck_id ON public.deck_subscriptions USING btree (deck_id);

CREATE INDEX ix_decks_owner_id_created_at ON public.decks USING btree (owner_id, created_at);

CREATE INDEX ix_decks_public_created_at ON public.decks USING btree (created_at) WHERE is_public;

CREATE INDEX ix_decks_tags ON public.decks USING gin (tags);

CREATE INDEX ix_flashcards_deck_id_due_at ON public.flashcards USING btree (deck_id, due_at);

CREATE INDEX ix_flashcards_due_at_unmastered ON public.flashcards USING btree (due_at) WHERE (status <> 'MASTERED'::card_status);

CREATE INDEX ix_review_sessions_deck_id ON public.review_sessions USING btree (deck_id);

CREATE INDEX ix_review_sessions_user_id_started_at ON public.review_sessions USING btree (user_id, started_at);

CREATE INDEX ix_user_sessions_user_id_expires_at ON public.user_sessions USING btree (user_id, expires_at);

CREATE UNIQUE INDEX pk_card_reviews ON public.card_reviews USING btree (id);

CREATE UNIQUE INDEX pk_daily_study_stats ON public.daily_study_stats USING btree (id);

CREATE UNIQUE INDEX pk_deck_stats ON public.deck_stats USING btree (id);

CREATE UNIQUE INDEX pk_deck_subscriptions ON public.deck_subscriptions USING btree (id);

CREATE UNIQUE INDEX pk_decks ON public.decks USING btree (id);

CREATE UNIQUE INDEX pk_flashcards ON public.flashcards USING btree (id);

CREATE UNIQUE INDEX pk_review_sessions ON public.review_sessions USING btree (id);

CREATE UNIQUE INDEX pk_user_sessions ON public.user_sessions USING btree (id);

CREATE UNIQUE INDEX pk_users ON public.users USING btree (id);

CREATE UNIQUE INDEX uq_daily_study_stats_user_id ON public.daily_study_stats USING btree (user_id, day);

CREATE UNIQUE INDEX uq_deck_stats_deck_id ON public.deck_stats USING btree (deck_id);

CREATE UNIQUE INDEX uq_deck_subscriptions_user_id ON public.deck_subscriptions USING btree (user_id, deck_id);

CREATE UNIQUE INDEX uq_user_sessions_token_hash ON public.user_sessions USING btree (token_hash);

CREATE UNIQUE INDEX uq_users_email ON public.users USING btree (email);

alter table "public"."card_reviews" add constraint "pk_card_reviews" PRIMARY KEY using index "pk_card_reviews";

alter table "public"."daily_study_stats" add constraint "pk_daily_study_stats" PRIMARY KEY using index "pk_daily_study_stats";

alter table "public"."deck_stats" add constraint "pk_deck_stats" PRIMARY KEY using index "pk_deck_stats";

alter table "public"."deck_subscriptions" add constraint "pk_deck_subscriptions" PRIMARY KEY using index "pk_deck_subscriptions";

alter table "public"."decks" add constraint "pk_decks" PRIMARY KEY using index "pk_decks";

alter table "public"."flashcards" add constraint "pk_flashcards" PRIMARY KEY using index "pk_flashcards";

alter table "public"."review_sessions" add constraint "pk_review_sessions" PRIMARY KEY using index "pk_review_sessions";

alter table "public"."user_sessions" add constraint "pk_user_sessions" PRIMARY KEY using index "pk_user_sessions";

alter table "public"."users" add constraint "pk_users" PRIMARY KEY using index "pk_users";

alter table "public"."card_reviews" add constraint "ck_card_reviews_ease_factors_min" CHECK (((previous_ease_factor >= 1.3) AND (new_ease_factor >= 1.3))) not valid;

alter table "public"."card_reviews" validate constraint "ck_card_reviews_ease_factors_min";

alter table "public"."card_reviews" add constraint "ck_card_reviews_intervals_nonnegative" CHECK (((previous_interval_days >= 0) AND (new_interval_days >= 0))) not valid;

alter table "public"."card_reviews" validate constraint "ck_card_reviews_intervals_nonnegative";

alter table "public"."card_reviews" add constraint "ck_card_reviews_rating_range" CHECK (((rating >= 0) AND (rating <= 5))) not valid;

alter table "public"."card_reviews" validate constraint "ck_card_reviews_rating_range";

alter table "public"."card_reviews" add constraint "ck_card_reviews_response_ms_nonnegative" CHECK ((response_ms >= 0)) not valid;

alter table "public"."card_reviews" validate constraint "ck_card_reviews_response_ms_nonnegative";

alter table "public"."card_reviews" add constraint "fk_card_reviews_flashcard_id_flashcards" FOREIGN KEY (flashcard_id) REFERENCES flashcards(id) ON DELETE CASCADE not valid;

alter table "public"."card_reviews" validate constraint "fk_card_reviews_flashcard_id_flashcards";

alter table "public"."card_reviews" add constraint "fk_card_reviews_session_id_review_sessions" FOREIGN KEY (session_id) REFERENCES review_sessions(id) ON DELETE CASCADE not valid;

alter table "public"."card_reviews" validate constraint "fk_card_reviews_session_id_review_sessions";

alter table "public"."card_reviews" add constraint "fk_card_reviews_user_id_users" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."card_reviews" validate constraint "fk_card_reviews_user_id_users";

alter table "public"."daily_study_stats" add constraint "ck_daily_study_stats_correct_range" CHECK (((correct >= 0) AND (correct <= reviews))) not valid;

alter table "public"."daily_study_stats" validate constraint "ck_daily_study_stats_correct_range";

alter table "public"."daily_study_stats" add constraint "ck_daily_study_stats_minutes_nonnegative" CHECK ((minutes >= 0)) not valid;

alter table "public"."daily_study_stats" validate constraint "ck_daily_study_stats_minutes_nonnegative";

alter table "public"."daily_study_stats" add constraint "ck_daily_study_stats_new_cards_nonnegative" CHECK ((new_cards >= 0)) not valid;

alter table "public"."daily_study_stats" validate constraint "ck_daily_study_stats_new_cards_nonnegative";

alter table "public"."daily_study_stats" add constraint "ck_daily_study_stats_reviews_nonnegative" CHECK ((reviews >= 0)) not valid;

alter table "public"."daily_study_stats" validate constraint "ck_daily_study_stats_reviews_nonnegative";

alter table "public"."daily_study_stats" add constraint "fk_daily_study_stats_user_id_users" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."daily_study_stats" validate constraint "fk_daily_study_stats_user_id_users";

alter table "public"."daily_study_stats" add constraint "uq_daily_study_stats_user_id" UNIQUE using index "uq_daily_study_stats_user_id";

alter table "public"."deck_stats" add constraint "ck_deck_stats_counts_nonnegative" CHECK (((card_count >= 0) AND (new_count >= 0) AND (learning_count >= 0) AND (review_count >= 0) AND (mastered_count >= 0) AND (total_reviews >= 0))) not valid;

alter table "public"."deck_stats" validate constraint "ck_deck_stats_counts_nonnegative";

alter table "public"."deck_stats" add constraint "ck_deck_stats_retention_rate_range" CHECK (((retention_rate >= (0)::numeric) AND (retention_rate <= (1)::numeric))) not valid;

alter table "public"."deck_stats" validate constraint "ck_deck_stats_retention_rate_range";

alter table "public"."deck_stats" add constraint "ck_deck_stats_status_counts_le_card_count" CHECK (((((new_count + learning_count) + review_count) + mastered_count) <= card_count)) not valid;

alter table "public"."deck_stats" validate constraint "ck_deck_stats_status_counts_le_card_count";

alter table "public"."deck_stats" add constraint "fk_deck_stats_deck_id_decks" FOREIGN KEY (deck_id) REFERENCES decks(id) ON DELETE CASCADE not valid;

alter table "public"."deck_stats" validate constraint "fk_deck_stats_deck_id_decks";

alter table "public"."deck_stats" add constraint "uq_deck_stats_deck_id" UNIQUE using index "uq_deck_stats_deck_id";

alter table "public"."deck_subscriptions" add constraint "fk_deck_subscriptions_deck_id_decks" FOREIGN KEY (deck_id) REFERENCES decks(id) ON DELETE RESTRICT not valid;

alter table "public"."deck_subscriptions" validate constraint "fk_deck_subscriptions_deck_id_decks";

alter table "public"."deck_subscriptions" add constraint "fk_deck_subscriptions_user_id_users" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."deck_subscriptions" validate constraint "fk_deck_subscriptions_user_id_users";

alter table "public"."deck_subscriptions" add constraint "uq_deck_subscriptions_user_id" UNIQUE using index "uq_deck_subscriptions_user_id";

alter table "public"."decks" add constraint "ck_decks_title_not_blank" CHECK ((length(btrim((title)::text)) > 0)) not valid;

alter table "public"."decks" validate constraint "ck_decks_title_not_blank";

alter table "public"."decks" add constraint "fk_decks_owner_id_users" FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."decks" validate constraint "fk_decks_owner_id_users";

alter table "public"."flashcards" add constraint "ck_flashcards_ease_factor_min" CHECK ((ease_factor >= 1.3)) not valid;

alter table "public"."flashcards" validate constraint "ck_flashcards_ease_factor_min";

alter table "public"."flashcards" add constraint "ck_flashcards_front_not_blank" CHECK ((length(btrim(front)) > 0)) not valid;

alter table "public"."flashcards" validate constraint "ck_flashcards_front_not_blank";

alter table "public"."flashcards" add constraint "ck_flashcards_interval_days_nonnegative" CHECK ((interval_days >= 0)) not valid;

alter table "public"."flashcards" validate constraint "ck_flashcards_interval_days_nonnegative";

alter table "public"."flashcards" add constraint "ck_flashcards_lapses_nonnegative" CHECK ((lapses >= 0)) not valid;

alter table "public"."flashcards" validate constraint "ck_flashcards_lapses_nonnegative";

alter table "public"."flashcards" add constraint "ck_flashcards_repetitions_nonnegative" CHECK ((repetitions >= 0)) not valid;

alter table "public"."flashcards" validate constraint "ck_flashcards_repetitions_nonnegative";

alter table "public"."flashcards" add constraint "fk_flashcards_deck_id_decks" FOREIGN KEY (deck_id) REFERENCES decks(id) ON DELETE CASCADE not valid;

alter table "public"."flashcards" validate constraint "fk_flashcards_deck_id_decks";

alter table "public"."review_sessions" add constraint "ck_review_sessions_cards_correct_range" CHECK (((cards_correct >= 0) AND (cards_correct <= cards_reviewed))) not valid;

alter table "public"."review_sessions" validate constraint "ck_review_sessions_cards_correct_range";

alter table "public"."review_sessions" add constraint "ck_review_sessions_cards_reviewed_nonnegative" CHECK ((cards_reviewed >= 0)) not valid;

alter table "public"."review_sessions" validate constraint "ck_review_sessions_cards_reviewed_nonnegative";

alter table "public"."review_sessions" add constraint "ck_review_sessions_ended_after_started" CHECK ((ended_at >= started_at)) not valid;

alter table "public"."review_sessions" validate constraint "ck_review_sessions_ended_after_started";

alter table "public"."review_sessions" add constraint "fk_review_sessions_deck_id_decks" FOREIGN KEY (deck_id) REFERENCES decks(id) ON DELETE SET NULL not valid;

alter table "public"."review_sessions" validate constraint "fk_review_sessions_deck_id_decks";

alter table "public"."review_sessions" add constraint "fk_review_sessions_user_id_users" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."review_sessions" validate constraint "fk_review_sessions_user_id_users";

alter table "public"."user_sessions" add constraint "ck_user_sessions_expires_after_created" CHECK ((expires_at > created_at)) not valid;

alter table "public"."user_sessions" validate constraint "ck_user_sessions_expires_after_created";

alter table "public"."user_sessions" add constraint "fk_user_sessions_user_id_users" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE not valid;

alter table "public"."user_sessions" validate constraint "fk_user_sessions_user_id_users";

alter table "public"."user_sessions" add constraint "uq_user_sessions_token_hash" UNIQUE using index "uq_user_sessions_token_hash";

alter table "public"."users" add constraint "ck_users_current_streak_nonnegative" CHECK ((current_streak >= 0)) not valid;

alter table "public"."users" validate constraint "ck_users_current_streak_nonnegative";

alter table "public"."users" add constraint "ck_users_daily_goal_positive" CHECK ((daily_goal > 0)) not valid;

alter table "public"."users" validate constraint "ck_users_daily_goal_positive";

alter table "public"."users" add constraint "ck_users_email_lowercase" CHECK (((email)::text = lower((email)::text))) not valid;

alter table "public"."users" validate constraint "ck_users_email_lowercase";

alter table "public"."users" add constraint "ck_users_longest_streak_ge_current" CHECK ((longest_streak >= current_streak)) not valid;

alter table "public"."users" validate constraint "ck_users_longest_streak_ge_current";

alter table "public"."users" add constraint "ck_users_total_reviews_nonnegative" CHECK ((total_reviews >= 0)) not valid;

alter table "public"."users" validate constraint "ck_users_total_reviews_nonnegative";

alter table "public"."users" add constraint "ck_users_xp_nonnegative" CHECK ((xp >= 0)) not valid;

alter table "public"."users" validate constraint "ck_users_xp_nonnegative";

alter table "public"."users" add constraint "uq_users_email" UNIQUE using index "uq_users_email";

set check_function_bodies = off;

create or replace view "public"."due_cards" as  SELECT d.owner_id AS user_id,
    f.deck_id,
    d.title AS deck_title,
    f.id AS flashcard_id,
    f.front,
    f.back,
    f.hint,
    f.status,
    f.ease_factor,
    f.interval_days,
    f.repetitions,
    f.due_at,
    f.last_reviewed_at
   FROM (flashcards f
     JOIN decks d ON ((d.id = f.deck_id)))
  WHERE ((f.due_at <= now()) AND (f.status <> 'MASTERED'::card_status));

CREATE OR REPLACE FUNCTION public.set_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$function$
;

CREATE TRIGGER trg_daily_study_stats_set_updated_at BEFORE UPDATE ON public.daily_study_stats FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_deck_stats_set_updated_at BEFORE UPDATE ON public.deck_stats FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_deck_subscriptions_set_updated_at BEFORE UPDATE ON public.deck_subscriptions FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_decks_set_updated_at BEFORE UPDATE ON public.decks FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_flashcards_set_updated_at BEFORE UPDATE ON public.flashcards FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_review_sessions_set_updated_at BEFORE UPDATE ON public.review_sessions FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_user_sessions_set_updated_at BEFORE UPDATE ON public.user_sessions FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER trg_users_set_updated_at BEFORE UPDATE ON public.users FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION set_updated_at();

COMMENT ON COLUMN public.card_reviews.rating IS 'SM-2 quality of recall: 0 (blackout) .. 5 (perfect).';

COMMENT ON COLUMN public.card_reviews.response_ms IS 'Time from showing the card to answering, in milliseconds.';

COMMENT ON COLUMN public.card_reviews.user_id IS 'Denormalised from the session for per-user time-range queries.';

COMMENT ON COLUMN public.daily_study_stats.day IS 'Calendar day in the user''s time zone.';

COMMENT ON COLUMN public.daily_study_stats.minutes IS 'Active study time, rounded to minutes.';

COMMENT ON COLUMN public.daily_study_stats.new_cards IS 'Cards seen for the first time that day.';

COMMENT ON COLUMN public.daily_study_stats.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.deck_stats.deck_id IS '1:1 with decks.';

COMMENT ON COLUMN public.deck_stats.retention_rate IS 'Share of reviews rated >= 3 over the last 30 days (0..1).';

COMMENT ON COLUMN public.deck_stats.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.deck_subscriptions.notify_on_update IS 'E-mail the subscriber when the owner edits the deck.';

COMMENT ON COLUMN public.deck_subscriptions.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.decks.is_public IS 'Listed in the public catalogue and open to subscriptions.';

COMMENT ON COLUMN public.decks.owner_id IS 'User who owns and edits the deck.';

COMMENT ON COLUMN public.decks.tags IS 'Lower-case topic tags.';

COMMENT ON COLUMN public.decks.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.flashcards.back IS 'Answer side (Markdown).';

COMMENT ON COLUMN public.flashcards.due_at IS 'When the card is next due for review.';

COMMENT ON COLUMN public.flashcards.ease_factor IS 'SM-2 ease factor; never below 1.3.';

COMMENT ON COLUMN public.flashcards.extra IS 'Media URLs, cloze data and other card-type specific fields.';

COMMENT ON COLUMN public.flashcards.front IS 'Prompt side (Markdown).';

COMMENT ON COLUMN public.flashcards.interval_days IS 'Current review interval in days.';

COMMENT ON COLUMN public.flashcards.lapses IS 'Times the card was forgotten after being learned.';

COMMENT ON COLUMN public.flashcards.repetitions IS 'Successful reviews in a row (SM-2 n).';

COMMENT ON COLUMN public.flashcards.status IS 'Learning stage of the card.';

COMMENT ON COLUMN public.flashcards.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.review_sessions.cards_correct IS 'Reviews rated >= 3.';

COMMENT ON COLUMN public.review_sessions.deck_id IS 'Deck studied; NULL for mixed sessions or after the deck was deleted.';

COMMENT ON COLUMN public.review_sessions.ended_at IS 'NULL while the session is still open.';

COMMENT ON COLUMN public.review_sessions.summary IS 'Client-computed recap (rating histogram, XP earned, ...).';

COMMENT ON COLUMN public.review_sessions.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.user_sessions.revoked_at IS 'Set on logout; NULL while the session is valid.';

COMMENT ON COLUMN public.user_sessions.token_hash IS 'SHA-256 of the session token; the token is not stored.';

COMMENT ON COLUMN public.user_sessions.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.users.current_streak IS 'Consecutive study days up to today.';

COMMENT ON COLUMN public.users.daily_goal IS 'Target number of reviews per day.';

COMMENT ON COLUMN public.users.email IS 'Login e-mail, stored lower-cased (unique).';

COMMENT ON COLUMN public.users.is_active IS 'False disables login (soft ban).';

COMMENT ON COLUMN public.users.longest_streak IS 'Best streak ever reached.';

COMMENT ON COLUMN public.users.password_hash IS 'Werkzeug/scrypt password hash; never the plain password.';

COMMENT ON COLUMN public.users.preferences IS 'Free-form UI/study settings (theme, new cards per day, ...).';

COMMENT ON COLUMN public.users.timezone IS 'IANA time zone; defines the user''s study day for streaks.';

COMMENT ON COLUMN public.users.total_reviews IS 'Lifetime number of card reviews.';

COMMENT ON COLUMN public.users.updated_at IS 'Last modification time; maintained by the set_updated_at() trigger.';

COMMENT ON COLUMN public.users.xp IS 'Gamification experience points.';

COMMENT ON FUNCTION public.set_updated_at() IS 'BEFORE UPDATE trigger: sets NEW.updated_at to now().';

COMMENT ON TABLE public.card_reviews IS 'Append-only log: one row per card answered, with the SM-2 transition.';

COMMENT ON TABLE public.daily_study_stats IS 'Per-user, per-day study totals (streaks, heatmap, goal tracking).';

COMMENT ON TABLE public.deck_stats IS 'Denormalised per-deck counters (1:1 with decks), refreshed after reviews.';

COMMENT ON TABLE public.deck_subscriptions IS 'A user following someone else''s public deck (one row per pair).';

COMMENT ON TABLE public.decks IS 'A named collection of flashcards owned by one user.';

COMMENT ON VIEW public.due_cards IS 'Flashcards due now (due_at <= now(), not MASTERED), one row per card with its owner as user_id.';

COMMENT ON TABLE public.flashcards IS 'One question/answer card with its spaced-repetition (SM-2) state.';

COMMENT ON TABLE public.review_sessions IS 'One sitting of study by a user, usually over a single deck.';

COMMENT ON TABLE public.user_sessions IS 'Server-side login sessions / remember-me tokens.';

COMMENT ON TABLE public.users IS 'Registered learners: authentication, preferences and lifetime analytics.';
