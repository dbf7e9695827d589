-- OTP cannot be used to lock a person out (SPEC §13.2).
--
-- An outside review showed that the old limits, keyed on the email and the method_id alone, let a
-- stranger who knew only an email lock its owner out: six wrong guesses made the owner's right
-- code a 429, and five sends an hour kept the email's budget spent. Limits now key on the pair
-- (email, client IP) first, with wider limits per email and per method_id that a stranger from up
-- to two IPs cannot reach:
--
--   otp-send (before Stytch is called; over a limit: 429 RATE_LIMITED, Retry-After)
--     per (email, IP)      one per 60 s, 5 per hour
--     per email            15 per hour
--     per IP               30 per hour
--   otp-verify (counted before Stytch is called; given back when Stytch could not judge the code)
--     per (method_id, IP)  5 wrong codes per sent code, then 429 TOO_MANY_ATTEMPTS for that IP
--     per method_id        20 wrong codes per sent code from all IPs, then 429 TOO_MANY_ATTEMPTS
--                          for everyone until a new code is sent
--     per IP               60 failed verifies per hour, then 429 RATE_LIMITED, Retry-After
--     a method_id no otp-send of this deployment answered (within the hour): 401 INVALID_CODE,
--     Stytch not called
--
-- For every limit an email's `+tag` is ignored (`Ada+x@Example.com ` counts as
-- `ada@example.com`), so the aliases of one inbox share its budget. Emails and client IPs are
-- stored only as SHA-256 (the pair as SHA-256 of their two hashes); method_ids are Stytch's opaque
-- email ids, stored as they are. Row-level security is on and there are no policies or grants:
-- only the service connection reads or writes these tables.
--
-- Replaced here: identity.otp_verify_attempt (table and functions; one count per method_id), the
-- send check (two scopes) and identity.policy (new numbers). Codes sent before this migration are
-- not on record, so verifying one is 401 INVALID_CODE: the person asks for a new code.

-- Policy numbers added or changed here (identity.policy_setting, see 20261129000100_restructure.sql).
insert into identity.policy_setting (name, value, note) values
  ('otp_sends_per_email_ip', 5, 'per (email, IP) per window'),
  ('otp_sends_per_email', 15, 'per email per window, all IPs'),
  ('otp_attempts_per_code_all_ips', 20, 'from all IPs together'),
  ('otp_failed_verifies_per_ip', 60, 'per IP per window')
on conflict (name) do update set value = excluded.value, note = excluded.note;

-- The stored key of an email for limits: SHA-256 of the trimmed, lower-cased address with the
-- `+tag` of its local part removed (`ada+x@example.com` → `ada@example.com`).
create function identity.otp_email_key(p_email text) returns bytea
language sql immutable
set search_path = pg_catalog, extensions
as $$
  select identity.otp_limit_key(
    pg_catalog.regexp_replace(pg_catalog.lower(pg_catalog.btrim(p_email)), '^([^+@]*)\+[^@]*(@[^@]*)$', '\1\2')
  )
$$;

-- Sends: a third scope, the pair (email, IP). Its key is SHA-256 of the email's and the IP's keys.
alter table identity.otp_send_limit drop constraint otp_send_limit_scope_check;
alter table identity.otp_send_limit
  add constraint otp_send_limit_scope_check check (scope in ('email_ip', 'email', 'ip'));

-- otp-send, before Stytch is called: may this email be sent a code from this IP now? An allowed
-- send is recorded in the same call; a refused one is not (hammering does not push the wait
-- further out). An empty IP counts as 'unknown', one shared bucket.
-- Returns {allowed: true} or {allowed: false, retry_after_seconds: int >= 1, limit: text}, where
-- retry_after_seconds is when every limit in the way has cleared.
create or replace function identity.otp_send_allowed(p_email text, p_ip text, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_window constant interval := make_interval(secs => identity.policy('otp_window_seconds'));
  c_pair_gap constant interval := make_interval(secs => identity.policy('otp_email_gap_seconds'));
  c_per_pair constant int := identity.policy('otp_sends_per_email_ip');
  c_per_email constant int := identity.policy('otp_sends_per_email');
  c_per_ip constant int := identity.policy('otp_sends_per_ip');
  v_email_key bytea := identity.otp_email_key(p_email);
  v_ip_key bytea := identity.otp_limit_key(coalesce(nullif(btrim(p_ip), ''), 'unknown'));
  v_pair_key bytea := pg_catalog.sha256(v_email_key || v_ip_key);
  v_pair_hits timestamptz[];
  v_email_hits timestamptz[];
  v_ip_hits timestamptz[];
  v_n int;
  v_wait_until timestamptz := p_now;
  v_limit text;
begin
  if coalesce(btrim(p_email), '') = '' or p_now is null then
    raise exception 'otp_send_allowed: email and now are required';
  end if;
  perform identity.sweep_otp_send_limit(p_now);

  -- Lock the three rows (creating them when new), always pair, email, IP in that order, so two
  -- sends never wait on each other in a cycle. `do update` (not `do nothing`) takes the row lock.
  insert into identity.otp_send_limit as l (scope, key_hash, updated_at)
  values ('email_ip', v_pair_key, p_now), ('email', v_email_key, p_now), ('ip', v_ip_key, p_now)
  on conflict (scope, key_hash) do update set updated_at = l.updated_at;

  select coalesce(array_agg(h order by h), '{}') into v_pair_hits
  from identity.otp_send_limit l, unnest(l.sent_at) h
  where l.scope = 'email_ip' and l.key_hash = v_pair_key and h > p_now - c_window;
  select coalesce(array_agg(h order by h), '{}') into v_email_hits
  from identity.otp_send_limit l, unnest(l.sent_at) h
  where l.scope = 'email' and l.key_hash = v_email_key and h > p_now - c_window;
  select coalesce(array_agg(h order by h), '{}') into v_ip_hits
  from identity.otp_send_limit l, unnest(l.sent_at) h
  where l.scope = 'ip' and l.key_hash = v_ip_key and h > p_now - c_window;

  -- Each limit in the way moves the time the send may be retried; the latest one is named.
  v_n := cardinality(v_pair_hits);
  if v_n > 0 and v_pair_hits[v_n] + c_pair_gap > v_wait_until then
    v_wait_until := v_pair_hits[v_n] + c_pair_gap;
    v_limit := 'email_ip_per_minute';
  end if;
  if v_n >= c_per_pair and v_pair_hits[v_n - c_per_pair + 1] + c_window > v_wait_until then
    v_wait_until := v_pair_hits[v_n - c_per_pair + 1] + c_window;
    v_limit := 'email_ip_per_hour';
  end if;
  v_n := cardinality(v_email_hits);
  if v_n >= c_per_email and v_email_hits[v_n - c_per_email + 1] + c_window > v_wait_until then
    v_wait_until := v_email_hits[v_n - c_per_email + 1] + c_window;
    v_limit := 'email_per_hour';
  end if;
  v_n := cardinality(v_ip_hits);
  if v_n >= c_per_ip and v_ip_hits[v_n - c_per_ip + 1] + c_window > v_wait_until then
    v_wait_until := v_ip_hits[v_n - c_per_ip + 1] + c_window;
    v_limit := 'ip_per_hour';
  end if;

  if v_limit is not null then
    -- Rows this refused call created hold nothing worth keeping.
    delete from identity.otp_send_limit
    where (scope, key_hash) in (('email_ip', v_pair_key), ('email', v_email_key), ('ip', v_ip_key))
      and sent_at = '{}';
    return jsonb_build_object(
      'allowed', false,
      'retry_after_seconds', greatest(1, ceil(extract(epoch from v_wait_until - p_now)))::int,
      'limit', v_limit
    );
  end if;

  -- Keep only what a later check can need: the last c_per_* sends of each scope.
  update identity.otp_send_limit
  set sent_at = case scope
        when 'email_ip' then (v_pair_hits || p_now)[greatest(1, cardinality(v_pair_hits) + 2 - c_per_pair):]
        when 'email' then (v_email_hits || p_now)[greatest(1, cardinality(v_email_hits) + 2 - c_per_email):]
        else (v_ip_hits || p_now)[greatest(1, cardinality(v_ip_hits) + 2 - c_per_ip):]
      end,
      updated_at = p_now
  where (scope, key_hash) in (('email_ip', v_pair_key), ('email', v_email_key), ('ip', v_ip_key));

  return jsonb_build_object('allowed', true);
end
$$;

-- Verification is counted per sent code, no longer per method_id alone.
drop function identity.otp_verify_attempt(text, int, timestamptz);
drop function identity.otp_verify_release(text, timestamptz);
drop function identity.otp_code_sent(text, timestamptz);
drop table identity.otp_verify_attempt;

-- The method_ids otp-send handed out, each with the wrong codes tried against its current code.
-- Stytch keeps one method_id per email for good and one live code per method_id (at most 10
-- minutes), so a row whose code was sent over a window ago guards a dead code: it counts as never
-- handed out, and goes in the sweep.
create table identity.otp_method (
  method_id text primary key check (length(method_id) between 1 and 128),
  code_sent_at timestamptz not null,
  -- One entry per wrong code against the current code: the key of the IP that tried it. The
  -- per-IP count is how often an IP appears; the method's count is the length, which the
  -- all-IPs limit keeps short.
  failed_ip_keys bytea[] not null default '{}'
);
create index otp_method_code_sent_at_idx on identity.otp_method (code_sent_at);
alter table identity.otp_method enable row level security;

-- Failed verifications per client IP: a sliding window kept as the times of the last ones.
create table identity.otp_verify_failure (
  ip_key bytea primary key check (length(ip_key) = 32),
  failed_at timestamptz[] not null default '{}',
  updated_at timestamptz not null
);
create index otp_verify_failure_updated_at_idx on identity.otp_verify_failure (updated_at);
alter table identity.otp_verify_failure enable row level security;

create function identity.sweep_otp_method(p_now timestamptz) returns void
language sql
set search_path = pg_catalog, extensions
as $$
  delete from identity.otp_method
  where ctid in (
    select ctid from identity.otp_method
    where code_sent_at < p_now - make_interval(secs => identity.policy('otp_window_seconds'))
    limit identity.policy('sweep_batch_rows') for update skip locked
  )
$$;

create function identity.sweep_otp_verify_failure(p_now timestamptz) returns void
language sql
set search_path = pg_catalog, extensions
as $$
  delete from identity.otp_verify_failure
  where ctid in (
    select ctid from identity.otp_verify_failure
    where updated_at < p_now - make_interval(secs => identity.policy('otp_window_seconds'))
    limit identity.policy('sweep_batch_rows') for update skip locked
  )
$$;

-- `p_values` without its first occurrence of `p_value` (unchanged when there is none).
create function identity.array_without_one(p_values anyarray, p_value anyelement)
returns anyarray
language sql immutable
set search_path = pg_catalog
as $$
  select case
    when pg_catalog.array_position(p_values, p_value) is null then p_values
    else p_values[:pg_catalog.array_position(p_values, p_value) - 1]
      || p_values[pg_catalog.array_position(p_values, p_value) + 1:]
  end
$$;

-- otp-send, after Stytch sent a new code for p_method_id: the method is on record as handed out,
-- and the old code being dead, every count against the method starts again from zero.
create function identity.otp_code_sent(p_method_id text, p_now timestamptz)
returns void
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  perform identity.sweep_otp_method(p_now);
  insert into identity.otp_method as m (method_id, code_sent_at)
  values (p_method_id, p_now)
  on conflict (method_id) do update set code_sent_at = p_now, failed_ip_keys = '{}';
end
$$;

-- otp-verify, before Stytch is called: counts this attempt as a wrong code against the method and
-- the IP unless a limit is reached, in one statement, so concurrent guesses never send more codes
-- to Stytch than the limits allow. Returns {verdict} with verdict one of:
--   'counted'         call Stytch (settle with otp_verify_release or otp_verify_succeeded);
--   'unknown_method'  no live code was handed out for this method_id (counted for the IP);
--   'ip_locked'       this IP used its attempts on the method's current code (not counted);
--   'method_locked'   the method's current code used its attempts from all IPs (not counted);
--   'ip_limited'      this IP reached its failed verifies per window (not counted), with
--                     retry_after_seconds.
-- Locks the IP's row, then the method's row: otp_verify_release takes them in the same order.
create function identity.otp_verify_attempt(p_method_id text, p_ip text, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_window constant interval := make_interval(secs => identity.policy('otp_window_seconds'));
  c_per_ip constant int := identity.policy('otp_failed_verifies_per_ip');
  v_ip_key bytea := identity.otp_limit_key(coalesce(nullif(btrim(p_ip), ''), 'unknown'));
  v_ip_failures timestamptz[];
  v_method identity.otp_method;
  v_verdict text;
begin
  if coalesce(p_method_id, '') = '' or p_now is null then
    raise exception 'otp_verify_attempt: method id and now are required';
  end if;
  perform identity.sweep_otp_verify_failure(p_now);

  insert into identity.otp_verify_failure as f (ip_key, updated_at)
  values (v_ip_key, p_now)
  on conflict (ip_key) do update set updated_at = f.updated_at;
  select coalesce(array_agg(t order by t), '{}') into v_ip_failures
  from identity.otp_verify_failure f, unnest(f.failed_at) t
  where f.ip_key = v_ip_key and t > p_now - c_window;

  if cardinality(v_ip_failures) >= c_per_ip then
    return jsonb_build_object(
      'verdict', 'ip_limited',
      'retry_after_seconds', greatest(1, ceil(extract(epoch from
        v_ip_failures[cardinality(v_ip_failures) - c_per_ip + 1] + c_window - p_now)))::int
    );
  end if;

  select * into v_method from identity.otp_method
  where method_id = p_method_id and code_sent_at > p_now - c_window
  for update;
  if not found then
    v_verdict := 'unknown_method';
  elsif cardinality(v_method.failed_ip_keys) >= identity.policy('otp_attempts_per_code_all_ips') then
    v_verdict := 'method_locked';
  elsif (select count(*) from unnest(v_method.failed_ip_keys) k where k = v_ip_key)
    >= identity.policy('otp_attempts_per_code') then
    v_verdict := 'ip_locked';
  else
    v_verdict := 'counted';
    update identity.otp_method
    set failed_ip_keys = failed_ip_keys || v_ip_key
    where method_id = p_method_id;
  end if;

  if v_verdict in ('counted', 'unknown_method') then
    -- Keep only what a later check can need: the last c_per_ip failures.
    update identity.otp_verify_failure
    set failed_at = (v_ip_failures || p_now)[greatest(1, cardinality(v_ip_failures) + 2 - c_per_ip):],
        updated_at = p_now
    where ip_key = v_ip_key;
  else
    -- A row this refused call created holds nothing worth keeping.
    delete from identity.otp_verify_failure where ip_key = v_ip_key and failed_at = '{}';
  end if;
  return jsonb_build_object('verdict', v_verdict);
end
$$;

-- otp-verify, when Stytch could not judge the code (5xx, timeout, its own rate limit): the
-- attempt counted at p_now was not a failed verification, so it is given back to the IP and to
-- the method (unless a new code was sent since, which started the method's count again).
create function identity.otp_verify_release(p_method_id text, p_ip text, p_now timestamptz)
returns void
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_ip_key bytea := identity.otp_limit_key(coalesce(nullif(btrim(p_ip), ''), 'unknown'));
begin
  update identity.otp_verify_failure
  set failed_at = identity.array_without_one(failed_at, p_now)
  where ip_key = v_ip_key;
  update identity.otp_method
  set failed_ip_keys = identity.array_without_one(failed_ip_keys, v_ip_key)
  where method_id = p_method_id and code_sent_at <= p_now;
end
$$;

-- otp-verify, after Stytch accepted the code: a success is not a failed verify, so the IP gets
-- its attempt back (people behind one office address sign in many times an hour). The method's
-- count is left as it is: its code is used, and the next send starts it again.
create function identity.otp_verify_succeeded(p_ip text, p_now timestamptz)
returns void
language sql
set search_path = pg_catalog, extensions
as $$
  update identity.otp_verify_failure
  set failed_at = identity.array_without_one(failed_at, p_now)
  where ip_key = identity.otp_limit_key(coalesce(nullif(btrim(p_ip), ''), 'unknown'))
$$;

revoke execute on function
  identity.policy(text),
  identity.otp_email_key(text),
  identity.otp_send_allowed(text, text, timestamptz),
  identity.sweep_otp_method(timestamptz),
  identity.sweep_otp_verify_failure(timestamptz),
  identity.array_without_one(anyarray, anyelement),
  identity.otp_code_sent(text, timestamptz),
  identity.otp_verify_attempt(text, text, timestamptz),
  identity.otp_verify_release(text, text, timestamptz),
  identity.otp_verify_succeeded(text, timestamptz)
from public, anon, authenticated;
