-- Abuse limits of Stytch email OTP sign-in (otp-send, otp-verify). Kept in Postgres so they hold
-- across Edge Function instances and restarts. Each check records in the same statement, before
-- Stytch is called, so concurrent requests cannot all slip under a limit.
--
-- Emails and client IPs are stored only as SHA-256 of their trimmed, lower-cased text: enough to
-- count sends, not to list who asked. The method_id is Stytch's opaque email id, stored as it is.
--
-- Row-level security is on and there are no policies or grants: only the service connection reads
-- or writes these tables.

-- Recent sends per email and per client IP: a sliding window kept as the send times of the last
-- hour (at most as many as the scope's hourly limit).
create table identity.otp_send_limit (
  scope text not null check (scope in ('email', 'ip')),
  key_hash bytea not null check (length(key_hash) = 32),
  sent_at timestamptz[] not null default '{}',
  updated_at timestamptz not null,
  primary key (scope, key_hash)
);
create index otp_send_limit_updated_at_idx on identity.otp_send_limit (updated_at);
alter table identity.otp_send_limit enable row level security;

-- Verification attempts against the current code of a Stytch method_id. Stytch keeps one method_id
-- per email for good and one live code per method_id, so a successful send (a new code, the old one
-- dead) starts the count again.
create table identity.otp_verify_attempt (
  method_id text primary key check (length(method_id) between 1 and 128),
  attempts int not null default 0 check (attempts >= 0),
  updated_at timestamptz not null
);
create index otp_verify_attempt_updated_at_idx on identity.otp_verify_attempt (updated_at);
alter table identity.otp_verify_attempt enable row level security;

-- The stored key of an email or IP: SHA-256 of the trimmed, lower-cased text.
create function identity.otp_limit_key(p_value text) returns bytea
language sql immutable
set search_path = pg_catalog, extensions
as $$
  select pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.lower(pg_catalog.btrim(p_value)), 'UTF8'))
$$;

-- otp-send, before Stytch is called: may this email be sent a code from this IP now? Limits: one
-- send per email per 60 s, 5 per email per hour, 30 per IP per hour. An allowed send is recorded
-- in the same call; a refused one is not (hammering does not push the wait further out).
-- An empty IP counts as 'unknown', one shared bucket.
-- Returns {allowed: true} or {allowed: false, retry_after_seconds: int >= 1, limit: text}.
create function identity.otp_send_allowed(p_email text, p_ip text, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_email_gap constant interval := interval '60 seconds';
  c_window constant interval := interval '1 hour';
  c_email_per_window constant int := 5;
  c_ip_per_window constant int := 30;
  v_email_key bytea := identity.otp_limit_key(p_email);
  v_ip_key bytea := identity.otp_limit_key(coalesce(nullif(btrim(p_ip), ''), 'unknown'));
  v_email_hits timestamptz[];
  v_ip_hits timestamptz[];
  v_n int;
  v_wait_until timestamptz := p_now;
  v_limit text;
begin
  if coalesce(btrim(p_email), '') = '' or p_now is null then
    raise exception 'otp_send_allowed: email and now are required';
  end if;

  -- Old rows go a few at a time, so the tables stay small without a scheduled job.
  delete from identity.otp_send_limit
  where ctid in (
    select ctid from identity.otp_send_limit
    where updated_at < p_now - c_window
    limit 20 for update skip locked
  );
  delete from identity.otp_verify_attempt
  where ctid in (
    select ctid from identity.otp_verify_attempt
    where updated_at < p_now - c_window
    limit 20 for update skip locked
  );

  -- Lock both rows (creating them when new), always email first, then IP, so two sends never wait
  -- on each other in a cycle. `do update` (rather than `do nothing`) is what takes the row lock.
  insert into identity.otp_send_limit as l (scope, key_hash, updated_at)
  values ('email', v_email_key, p_now)
  on conflict (scope, key_hash) do update set updated_at = l.updated_at;
  insert into identity.otp_send_limit as l (scope, key_hash, updated_at)
  values ('ip', v_ip_key, p_now)
  on conflict (scope, key_hash) do update set updated_at = l.updated_at;

  -- Read the windows only once both rows are locked.
  select coalesce(array_agg(h order by h), '{}') into v_email_hits
  from identity.otp_send_limit l, unnest(l.sent_at) h
  where l.scope = 'email' and l.key_hash = v_email_key and h > p_now - c_window;
  select coalesce(array_agg(h order by h), '{}') into v_ip_hits
  from identity.otp_send_limit l, unnest(l.sent_at) h
  where l.scope = 'ip' and l.key_hash = v_ip_key and h > p_now - c_window;

  v_n := cardinality(v_email_hits);
  if v_n > 0 and v_email_hits[v_n] + c_email_gap > v_wait_until then
    v_wait_until := v_email_hits[v_n] + c_email_gap;
    v_limit := 'email_per_minute';
  end if;
  if v_n >= c_email_per_window
    and v_email_hits[v_n - c_email_per_window + 1] + c_window > v_wait_until then
    v_wait_until := v_email_hits[v_n - c_email_per_window + 1] + c_window;
    v_limit := 'email_per_hour';
  end if;
  v_n := cardinality(v_ip_hits);
  if v_n >= c_ip_per_window
    and v_ip_hits[v_n - c_ip_per_window + 1] + c_window > v_wait_until then
    v_wait_until := v_ip_hits[v_n - c_ip_per_window + 1] + c_window;
    v_limit := 'ip_per_hour';
  end if;

  if v_limit is not null then
    -- Rows this refused call created hold nothing worth keeping.
    delete from identity.otp_send_limit
    where scope in ('email', 'ip') and key_hash in (v_email_key, v_ip_key) and sent_at = '{}';
    return jsonb_build_object(
      'allowed', false,
      'retry_after_seconds', greatest(1, ceil(extract(epoch from v_wait_until - p_now)))::int,
      'limit', v_limit
    );
  end if;

  -- Keep only what a later check can need: the last 5 email sends, the last 30 IP sends.
  update identity.otp_send_limit
  set sent_at = (v_email_hits || p_now)[greatest(1, cardinality(v_email_hits) + 2 - c_email_per_window):],
      updated_at = p_now
  where scope = 'email' and key_hash = v_email_key;
  update identity.otp_send_limit
  set sent_at = (v_ip_hits || p_now)[greatest(1, cardinality(v_ip_hits) + 2 - c_ip_per_window):],
      updated_at = p_now
  where scope = 'ip' and key_hash = v_ip_key;

  return jsonb_build_object('allowed', true);
end
$$;

-- otp-send, after Stytch sent a new code for p_method_id: the old code is dead, so attempts
-- against the method start again from zero.
create function identity.otp_code_sent(p_method_id text, p_now timestamptz)
returns void
language sql
set search_path = pg_catalog, extensions
as $$
  update identity.otp_verify_attempt
  set attempts = 0, updated_at = p_now
  where method_id = p_method_id
$$;

-- otp-verify, before Stytch is called: counts this attempt against the method's current code if
-- fewer than p_max_attempts were made, in one atomic statement, so concurrent guesses can never
-- send more than p_max_attempts codes to Stytch. Returns false (nothing recorded) when the method
-- has used up its attempts.
create function identity.otp_verify_attempt(
  p_method_id text,
  p_max_attempts int,
  p_now timestamptz
) returns boolean
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  -- Anyone can make up method_ids, so each call also clears a few rows idle for over an hour
  -- (Stytch codes live 10 minutes at most: such a row guards a dead code).
  delete from identity.otp_verify_attempt
  where ctid in (
    select ctid from identity.otp_verify_attempt
    where updated_at < p_now - interval '1 hour'
    limit 20 for update skip locked
  );
  insert into identity.otp_verify_attempt as a (method_id, attempts, updated_at)
  values (p_method_id, 1, p_now)
  on conflict (method_id) do update
  set attempts = a.attempts + 1, updated_at = p_now
  where a.attempts < p_max_attempts;
  return found;
end
$$;

-- otp-verify, when Stytch could not check the code (5xx, timeout, its own rate limit): that
-- attempt was not a failed verification, so it is given back.
create function identity.otp_verify_release(p_method_id text, p_now timestamptz)
returns void
language sql
set search_path = pg_catalog, extensions
as $$
  update identity.otp_verify_attempt
  set attempts = greatest(attempts - 1, 0), updated_at = p_now
  where method_id = p_method_id
$$;

revoke execute on function
  identity.otp_limit_key(text),
  identity.otp_send_allowed(text, text, timestamptz),
  identity.otp_code_sent(text, timestamptz),
  identity.otp_verify_attempt(text, int, timestamptz),
  identity.otp_verify_release(text, timestamptz)
from public, anon, authenticated;
