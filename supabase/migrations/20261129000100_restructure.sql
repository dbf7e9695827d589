-- Restructure: policy numbers in one place, one bounded sweep per table, `me` built from
-- person_json. Earlier migrations may have reached databases, so what moves is redefined here.
--
-- Every number that is policy (lifetimes, grace periods, attempt counts) is read from
-- identity.policy(name); the Edge Functions pass data, never policy. Old function signatures that
-- took such numbers as arguments are dropped and replaced by ones that do not.
--
-- Left where it is: whatsapp.message is created by 20261122000100_identity.sql. Moving a table
-- between applied migrations would mean editing one that has already run; the WhatsApp migration
-- documents where the table comes from.

-- The policy numbers of the identity schema, one row each: the SQL functions read them with
-- identity.policy(name), so no number is repeated and an operator can tune one with an UPDATE.
-- An unknown name raises, so a misspelt one fails loudly instead of reading as null. Later
-- migrations add their numbers as rows.
create table identity.policy_setting (
  name text primary key,
  value integer not null,
  note text not null default ''
);
alter table identity.policy_setting enable row level security;

create function identity.policy(p_name text) returns integer
language plpgsql stable
set search_path = pg_catalog
as $$
declare
  v_value integer;
begin
  select s.value into v_value from identity.policy_setting s where s.name = p_name;
  if not found then
    raise exception 'identity.policy: unknown policy %', p_name;
  end if;
  return v_value;
end
$$;

insert into identity.policy_setting (name, value, note) values
  ('session_ttl_seconds', 60 * 60 * 24 * 30, '30 days without a refresh'),
  ('refresh_reuse_grace_seconds', 10, 'a concurrent refresh''s window'),
  ('otp_window_seconds', 60 * 60, 'the sliding window of the limits'),
  ('otp_email_gap_seconds', 60, 'one send per email per minute'),
  ('otp_sends_per_email', 5, 'per window'),
  ('otp_sends_per_ip', 30, 'per window'),
  ('otp_attempts_per_code', 5, 'wrong codes per sent code'),
  ('sweep_batch_rows', 100, 'rows one sweep removes at most');

-- One sweep per table, each bounded: old rows go a batch at a time from the hot path that fills the
-- table, so no table grows without a scheduled job and no request pays for a large delete.
create function identity.sweep_otp_send_limit(p_now timestamptz) returns void
language sql
set search_path = pg_catalog, extensions
as $$
  delete from identity.otp_send_limit
  where ctid in (
    select ctid from identity.otp_send_limit
    where updated_at < p_now - make_interval(secs => identity.policy('otp_window_seconds'))
    limit identity.policy('sweep_batch_rows') for update skip locked
  )
$$;

create function identity.sweep_otp_verify_attempt(p_now timestamptz) returns void
language sql
set search_path = pg_catalog, extensions
as $$
  -- Stytch codes live 10 minutes at most: a row idle for a window guards a dead code.
  delete from identity.otp_verify_attempt
  where ctid in (
    select ctid from identity.otp_verify_attempt
    where updated_at < p_now - make_interval(secs => identity.policy('otp_window_seconds'))
    limit identity.policy('sweep_batch_rows') for update skip locked
  )
$$;

create function identity.sweep_consumed_workos_state(p_now timestamptz) returns void
language sql
set search_path = pg_catalog, extensions
as $$
  -- An hour past the state's own expiry absorbs clock differences between function instances.
  delete from identity.consumed_workos_state
  where ctid in (
    select ctid from identity.consumed_workos_state
    where expires_at < p_now - interval '1 hour'
    limit identity.policy('sweep_batch_rows') for update skip locked
  )
$$;

-- otp-send, before Stytch is called (same contract as before, numbers from identity.policy).
create or replace function identity.otp_send_allowed(p_email text, p_ip text, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_email_gap constant interval := make_interval(secs => identity.policy('otp_email_gap_seconds'));
  c_window constant interval := make_interval(secs => identity.policy('otp_window_seconds'));
  c_email_per_window constant int := identity.policy('otp_sends_per_email');
  c_ip_per_window constant int := identity.policy('otp_sends_per_ip');
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
  perform identity.sweep_otp_send_limit(p_now);

  -- Lock both rows (creating them when new), always email first, then IP, so two sends never wait
  -- on each other in a cycle. `do update` (rather than `do nothing`) is what takes the row lock.
  insert into identity.otp_send_limit as l (scope, key_hash, updated_at)
  values ('email', v_email_key, p_now)
  on conflict (scope, key_hash) do update set updated_at = l.updated_at;
  insert into identity.otp_send_limit as l (scope, key_hash, updated_at)
  values ('ip', v_ip_key, p_now)
  on conflict (scope, key_hash) do update set updated_at = l.updated_at;

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
    delete from identity.otp_send_limit
    where scope in ('email', 'ip') and key_hash in (v_email_key, v_ip_key) and sent_at = '{}';
    return jsonb_build_object(
      'allowed', false,
      'retry_after_seconds', greatest(1, ceil(extract(epoch from v_wait_until - p_now)))::int,
      'limit', v_limit
    );
  end if;

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

-- otp-verify, before Stytch is called: counts this attempt if the method has attempts left.
drop function identity.otp_verify_attempt(text, int, timestamptz);
create function identity.otp_verify_attempt(p_method_id text, p_now timestamptz)
returns boolean
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  perform identity.sweep_otp_verify_attempt(p_now);
  insert into identity.otp_verify_attempt as a (method_id, attempts, updated_at)
  values (p_method_id, 1, p_now)
  on conflict (method_id) do update
  set attempts = a.attempts + 1, updated_at = p_now
  where a.attempts < identity.policy('otp_attempts_per_code');
  return found;
end
$$;

create or replace function identity.consume_workos_state(
  p_nonce uuid,
  p_expires_at timestamptz,
  p_now timestamptz
) returns boolean
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_consumed boolean;
begin
  insert into identity.consumed_workos_state (nonce, expires_at, consumed_at)
  values (p_nonce, p_expires_at, p_now)
  on conflict (nonce) do nothing;
  v_consumed := found;
  perform identity.sweep_consumed_workos_state(p_now);
  return v_consumed;
end
$$;

-- A provider sign-in (otp-verify, workos-callback): upsert, provisioning of a new person, session.
drop function identity.sign_in(text, text, text, boolean, text, text, boolean, int, timestamptz);
create function identity.sign_in(
  p_provider text,
  p_provider_user_id text,
  p_email text,
  p_email_verified boolean,
  p_display_name text,
  p_workos_session_id text,
  p_invite_only boolean,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_upsert jsonb;
  v_person jsonb;
  v_session identity.session;
begin
  v_upsert := identity.upsert_person(
    p_provider, p_provider_user_id, p_email, p_email_verified, p_display_name, p_invite_only, p_now
  );
  if v_upsert ? 'error' then
    return v_upsert;
  end if;
  v_person := v_upsert -> 'person';

  if (v_upsert ->> 'is_new_user')::boolean then
    perform identity.provision_person(
      (v_person ->> 'id')::uuid,
      v_person ->> 'email',
      true,
      coalesce(nullif(v_person ->> 'display_name', ''), split_part(v_person ->> 'email', '@', 1)),
      p_now
    );
  end if;

  insert into identity.session (person_id, provider, amr_method, workos_session_id, created_at, expires_at)
  values (
    (v_person ->> 'id')::uuid,
    p_provider,
    case p_provider when 'stytch' then 'otp' else 'sso/oauth' end,
    p_workos_session_id,
    p_now,
    p_now + make_interval(secs => identity.policy('session_ttl_seconds'))
  )
  returning * into v_session;

  return identity.session_payload(v_session)
    || jsonb_build_object('is_new_user', v_upsert -> 'is_new_user');
end
$$;

-- Rotate a refresh token (session id + counter, already authenticated by its HMAC).
drop function identity.rotate_refresh_token(uuid, bigint, int, int, timestamptz);
create function identity.rotate_refresh_token(p_session_id uuid, p_counter bigint, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
  v_status text;
begin
  select * into v_session from identity.session where id = p_session_id for update;
  if not found or p_counter > v_session.refresh_counter then
    return jsonb_build_object('status', 'unknown');
  end if;
  if v_session.revoked_at is not null or v_session.expires_at <= p_now then
    return jsonb_build_object('status', 'revoked');
  end if;

  if p_counter = v_session.refresh_counter then
    update identity.session
    set refresh_counter = refresh_counter + 1,
        refreshed_at = p_now,
        expires_at = p_now + make_interval(secs => identity.policy('session_ttl_seconds'))
    where id = v_session.id
    returning * into v_session;
    v_status := 'rotated';
  elsif p_counter = v_session.refresh_counter - 1
    and v_session.refreshed_at
      > p_now - make_interval(secs => identity.policy('refresh_reuse_grace_seconds')) then
    v_status := 'replayed';
  else
    update identity.session
    set revoked_at = p_now, revoked_reason = 'refresh_token_reused'
    where id = v_session.id;
    return jsonb_build_object('status', 'reused');
  end if;

  return identity.session_payload(v_session) || jsonb_build_object('status', v_status);
end
$$;

-- `me`: the person (as person_json shows it) and their workspaces, or null when the session is
-- revoked or expired.
create or replace function identity.me(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns json
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_me json;
begin
  select json_build_object(
    'person', identity.person_json(p),
    'workspaces', coalesce((
      select json_agg(json_build_object('id', w.id, 'name', w.name, 'role', m.role) order by m.created_at)
      from identity.membership m
      join identity.workspace w on w.id = m.workspace_id
      where m.person_id = p.id
    ), '[]'::json)
  )
  into v_me
  from identity.session s
  join identity.person p on p.id = s.person_id
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now;
  return v_me;
end
$$;

revoke execute on all functions in schema identity from public, anon, authenticated;
