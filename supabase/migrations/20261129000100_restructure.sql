-- Restructure: policy numbers in one place, one bounded sweep per table, `me` built from
-- person_json. Earlier migrations may have reached databases, so what moves is redefined in new
-- ones: the OTP functions by 20261129000300_otp_lockout.sql, sign_in, rotate_refresh_token and me
-- (without their policy arguments) by 20261129000400_workspaces.sql.
--
-- Every number that is policy (lifetimes, grace periods, attempt counts) is read from
-- identity.policy(name); the Edge Functions pass data, never policy.
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

revoke execute on all functions in schema identity from public, anon, authenticated;
