-- plan: reverse of initial schema
-- Reverse of 20261122T011010Z_initial_schema.sql: `invoke rollback` runs it; approve its hazards like a plan's.
-- from: sha256:2b4215fc87432c06c5e5beefcefb2dc85593206cfae00a158fb19d01106f3397
-- to:   sha256:db7ed544a1c5066e2560872d6670c840295851dec0059b3fc50b5b276760da34
-- postgres: 15
-- Each hazard needs a reviewer's approval: copy its line, change 'hazard' to 'approve', add ' -- <reason>'.
-- hazard: BACKWARD_INCOMPATIBLE drop view "public"."due_cards"
-- hazard: BACKWARD_INCOMPATIBLE drop function "public"."set_updated_at"()
-- hazard: DELETES_DATA drop table "public"."card_reviews"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."card_reviews"
-- hazard: DELETES_DATA drop table "public"."daily_study_stats"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."daily_study_stats"
-- hazard: DELETES_DATA drop table "public"."deck_stats"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."deck_stats"
-- hazard: DELETES_DATA drop table "public"."deck_subscriptions"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."deck_subscriptions"
-- hazard: DELETES_DATA drop table "public"."decks"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."decks"
-- hazard: DELETES_DATA drop table "public"."flashcards"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."flashcards"
-- hazard: DELETES_DATA drop table "public"."review_sessions"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."review_sessions"
-- hazard: DELETES_DATA drop table "public"."user_sessions"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."user_sessions"
-- hazard: DELETES_DATA drop table "public"."users"
-- hazard: BACKWARD_INCOMPATIBLE drop table "public"."users"
-- hazard: DELETES_DATA drop type "public"."card_status"
-- hazard: BACKWARD_INCOMPATIBLE drop extension "uuid-ossp"

drop trigger if exists "trg_daily_study_stats_set_updated_at" on "public"."daily_study_stats";

drop trigger if exists "trg_deck_stats_set_updated_at" on "public"."deck_stats";

drop trigger if exists "trg_deck_subscriptions_set_updated_at" on "public"."deck_subscriptions";

drop trigger if exists "trg_decks_set_updated_at" on "public"."decks";

drop trigger if exists "trg_flashcards_set_updated_at" on "public"."flashcards";

drop trigger if exists "trg_review_sessions_set_updated_at" on "public"."review_sessions";

drop trigger if exists "trg_user_sessions_set_updated_at" on "public"."user_sessions";

drop trigger if exists "trg_users_set_updated_at" on "public"."users";

alter table "public"."card_reviews" drop constraint "ck_card_reviews_ease_factors_min";

alter table "public"."card_reviews" drop constraint "ck_card_reviews_intervals_nonnegative";

alter table "public"."card_reviews" drop constraint "ck_card_reviews_rating_range";

alter table "public"."card_reviews" drop constraint "ck_card_reviews_response_ms_nonnegative";

alter table "public"."card_reviews" drop constraint "fk_card_reviews_flashcard_id_flashcards";

alter table "public"."card_reviews" drop constraint "fk_card_reviews_session_id_review_sessions";

alter table "public"."card_reviews" drop constraint "fk_card_reviews_user_id_users";

alter table "public"."daily_study_stats" drop constraint "ck_daily_study_stats_correct_range";

alter table "public"."daily_study_stats" drop constraint "ck_daily_study_stats_minutes_nonnegative";

alter table "public"."daily_study_stats" drop constraint "ck_daily_study_stats_new_cards_nonnegative";

alter table "public"."daily_study_stats" drop constraint "ck_daily_study_stats_reviews_nonnegative";

alter table "public"."daily_study_stats" drop constraint "fk_daily_study_stats_user_id_users";

alter table "public"."daily_study_stats" drop constraint "uq_daily_study_stats_user_id";

alter table "public"."deck_stats" drop constraint "ck_deck_stats_counts_nonnegative";

alter table "public"."deck_stats" drop constraint "ck_deck_stats_retention_rate_range";

alter table "public"."deck_stats" drop constraint "ck_deck_stats_status_counts_le_card_count";

alter table "public"."deck_stats" drop constraint "fk_deck_stats_deck_id_decks";

alter table "public"."deck_stats" drop constraint "uq_deck_stats_deck_id";

alter table "public"."deck_subscriptions" drop constraint "fk_deck_subscriptions_deck_id_decks";

alter table "public"."deck_subscriptions" drop constraint "fk_deck_subscriptions_user_id_users";

alter table "public"."deck_subscriptions" drop constraint "uq_deck_subscriptions_user_id";

alter table "public"."decks" drop constraint "ck_decks_title_not_blank";

alter table "public"."decks" drop constraint "fk_decks_owner_id_users";

alter table "public"."flashcards" drop constraint "ck_flashcards_ease_factor_min";

alter table "public"."flashcards" drop constraint "ck_flashcards_front_not_blank";

alter table "public"."flashcards" drop constraint "ck_flashcards_interval_days_nonnegative";

alter table "public"."flashcards" drop constraint "ck_flashcards_lapses_nonnegative";

alter table "public"."flashcards" drop constraint "ck_flashcards_repetitions_nonnegative";

alter table "public"."flashcards" drop constraint "fk_flashcards_deck_id_decks";

alter table "public"."review_sessions" drop constraint "ck_review_sessions_cards_correct_range";

alter table "public"."review_sessions" drop constraint "ck_review_sessions_cards_reviewed_nonnegative";

alter table "public"."review_sessions" drop constraint "ck_review_sessions_ended_after_started";

alter table "public"."review_sessions" drop constraint "fk_review_sessions_deck_id_decks";

alter table "public"."review_sessions" drop constraint "fk_review_sessions_user_id_users";

alter table "public"."user_sessions" drop constraint "ck_user_sessions_expires_after_created";

alter table "public"."user_sessions" drop constraint "fk_user_sessions_user_id_users";

alter table "public"."user_sessions" drop constraint "uq_user_sessions_token_hash";

alter table "public"."users" drop constraint "ck_users_current_streak_nonnegative";

alter table "public"."users" drop constraint "ck_users_daily_goal_positive";

alter table "public"."users" drop constraint "ck_users_email_lowercase";

alter table "public"."users" drop constraint "ck_users_longest_streak_ge_current";

alter table "public"."users" drop constraint "ck_users_total_reviews_nonnegative";

alter table "public"."users" drop constraint "ck_users_xp_nonnegative";

alter table "public"."users" drop constraint "uq_users_email";

drop view if exists "public"."due_cards";

drop function if exists "public"."set_updated_at"();

alter table "public"."card_reviews" drop constraint "pk_card_reviews";

alter table "public"."daily_study_stats" drop constraint "pk_daily_study_stats";

alter table "public"."deck_stats" drop constraint "pk_deck_stats";

alter table "public"."deck_subscriptions" drop constraint "pk_deck_subscriptions";

alter table "public"."decks" drop constraint "pk_decks";

alter table "public"."flashcards" drop constraint "pk_flashcards";

alter table "public"."review_sessions" drop constraint "pk_review_sessions";

alter table "public"."user_sessions" drop constraint "pk_user_sessions";

alter table "public"."users" drop constraint "pk_users";

drop index if exists "public"."ix_card_reviews_flashcard_id_reviewed_at";

drop index if exists "public"."ix_card_reviews_session_id";

drop index if exists "public"."ix_card_reviews_user_id_reviewed_at";

drop index if exists "public"."ix_deck_subscriptions_deck_id";

drop index if exists "public"."ix_decks_owner_id_created_at";

drop index if exists "public"."ix_decks_public_created_at";

drop index if exists "public"."ix_decks_tags";

drop index if exists "public"."ix_flashcards_deck_id_due_at";

drop index if exists "public"."ix_flashcards_due_at_unmastered";

drop index if exists "public"."ix_review_sessions_deck_id";

drop index if exists "public"."ix_review_sessions_user_id_started_at";

drop index if exists "public"."ix_user_sessions_user_id_expires_at";

drop index if exists "public"."pk_card_reviews";

drop index if exists "public"."pk_daily_study_stats";

drop index if exists "public"."pk_deck_stats";

drop index if exists "public"."pk_deck_subscriptions";

drop index if exists "public"."pk_decks";

drop index if exists "public"."pk_flashcards";

drop index if exists "public"."pk_review_sessions";

drop index if exists "public"."pk_user_sessions";

drop index if exists "public"."pk_users";

drop index if exists "public"."uq_daily_study_stats_user_id";

drop index if exists "public"."uq_deck_stats_deck_id";

drop index if exists "public"."uq_deck_subscriptions_user_id";

drop index if exists "public"."uq_user_sessions_token_hash";

drop index if exists "public"."uq_users_email";

drop table "public"."card_reviews";

drop table "public"."daily_study_stats";

drop table "public"."deck_stats";

drop table "public"."deck_subscriptions";

drop table "public"."decks";

drop table "public"."flashcards";

drop table "public"."review_sessions";

drop table "public"."user_sessions";

drop table "public"."users";

drop type "public"."card_status";

drop extension if exists "uuid-ossp";
