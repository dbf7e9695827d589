-- Email delivery (SPEC §11): the outbox is sent through Resend by the email-dispatch function.
--
-- A run of email-dispatch:
--   1. identity.claim_due_emails(now): takes up to email_dispatch_batch_rows `ready` rows whose
--      next attempt is due and that no run holds, `for update skip locked`, and in the same
--      statement counts the attempt and leases the rows to the run (claimed_until = now +
--      email_claim_lease_seconds). Concurrent runs skip each other's rows while the claim is in
--      progress and see them as held after, so no two runs hold one row.
--   2. sends each row with `Idempotency-Key` = the row id;
--   3. identity.record_email_outcomes(outcomes, now): sent (with Resend's id), retried with
--      exponential backoff, failed (a 4xx, or the email_max_attempts-th failure, keeping the last
--      error), or released (not tried in this run: the attempt is given back).
--
-- A run that dies between sending and recording leaves its rows leased: nobody sends them until the
-- lease expires, and then Resend answers the repeated key with the first email's id (it keeps keys
-- for 24 hours, far longer than the lease), so the email is not sent twice. A row whose last
-- permitted attempt never reported back is failed by the next claim.
--
-- Scheduling, where pg_cron, pg_net and Vault exist (Supabase has all three): a cron job calls
-- email-dispatch every minute, and a statement trigger calls it once as soon as rows become ready
-- (best effort), both with the URL and a secret API key read from Vault when they fire:
--   select vault.create_secret('https://<ref>.supabase.co/functions/v1/email-dispatch', 'email_dispatch_url');
--   select vault.create_secret('<a secret key, sb_secret_…>', 'email_dispatch_api_key');
-- After enabling the extensions on a project migrated before: select identity.install_email_dispatch();
-- On plain Postgres (tests, the local server) nothing is installed; `npm run dev` runs its own loop.
--
-- The outbox also holds invitation rows (workspaces): this migration names only the columns every
-- outbox row has (id, to_email, template, payload, status) and those it adds, so it holds whatever
-- the workspaces migration made of person_id and its own columns.

alter table identity.email_outbox
  add column if not exists attempts integer not null default 0,
  add column if not exists next_attempt_at timestamptz,
  add column if not exists last_error text,
  add column if not exists provider_id text,
  add column if not exists sent_at timestamptz,
  add column if not exists failed_at timestamptz,
  add column if not exists claimed_until timestamptz;

comment on column identity.email_outbox.attempts is
  'Sends started (counted when a run claims the row; given back when the run releases it untried)';
comment on column identity.email_outbox.next_attempt_at is
  'A ready row is due when this is null or past (set by a retryable failure, with backoff)';
comment on column identity.email_outbox.claimed_until is
  'The lease of the run that claimed the row: no other run takes it before then';
comment on column identity.email_outbox.last_error is
  'The last failure (HTTP status, Resend''s error name and message, addresses masked)';
comment on column identity.email_outbox.provider_id is 'Resend''s email id, once sent';

-- The claim's scan: due ready rows, oldest first. Rows never tried (next_attempt_at null) sort
-- before every retry. The lease is a column of its own, outside the index, so claiming a row
-- changes no indexed value (PostgreSQL can then update it in place, without new index entries).
create index if not exists email_outbox_due_idx on identity.email_outbox
  ((coalesce(next_attempt_at, '-infinity'::timestamptz)))
  where status = 'ready';

-- Policy numbers added here (identity.policy_setting, see 20261129000100_restructure.sql).
insert into identity.policy_setting (name, value, note) values
  ('email_dispatch_batch_rows', 50, 'rows one claim takes at most'),
  ('email_claim_lease_seconds', 10 * 60, 'a claimed row waits this long for its run'),
  ('email_retry_base_seconds', 60, 'the wait after a first failure, doubling'),
  ('email_retry_cap_seconds', 6 * 60 * 60, 'the longest wait between attempts'),
  ('email_max_attempts', 8, 'the 8th failure fails the row')
on conflict (name) do update set value = excluded.value, note = excluded.note;

-- The wait before the next attempt of a row that failed `p_failures` times: email_retry_base_seconds
-- doubling per failure, ±20 % jitter (so rows failed together do not come back together), at least
-- the provider's Retry-After, at most email_retry_cap_seconds.
create function identity.email_retry_delay(p_failures integer, p_retry_after_seconds integer)
returns interval
language sql volatile
set search_path = pg_catalog
as $$
  select make_interval(secs => least(
    identity.policy('email_retry_cap_seconds')::double precision,
    greatest(
      coalesce(p_retry_after_seconds, 0)::double precision,
      identity.policy('email_retry_base_seconds')
        * power(2::double precision, least(greatest(p_failures, 1) - 1, 30))
        * (0.8 + 0.4 * random())
    )
  ))
$$;

-- email-dispatch, at the start of each batch: claims up to email_dispatch_batch_rows due rows.
-- Returns {emails: [{id, to_email, template, payload, attempt}], abandoned, more}:
--   attempt    this attempt's number (1 for the first);
--   abandoned  rows failed here because their last permitted attempt never reported back;
--   more       the batch was full: more rows may be due.
create function identity.claim_due_emails(p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_batch constant integer := identity.policy('email_dispatch_batch_rows');
  c_max_attempts constant integer := identity.policy('email_max_attempts');
  c_lease constant interval := make_interval(secs => identity.policy('email_claim_lease_seconds'));
  v_result jsonb;
begin
  if p_now is null then
    raise exception 'claim_due_emails: now is required';
  end if;
  with due as (
    select o.id
    from identity.email_outbox o
    where o.status = 'ready'
      and coalesce(o.next_attempt_at, '-infinity'::timestamptz) <= p_now
      and (o.claimed_until is null or o.claimed_until <= p_now)
    order by coalesce(o.next_attempt_at, '-infinity'::timestamptz)
    limit c_batch
    for update skip locked
  ), taken as (
    update identity.email_outbox o
    set attempts = case when o.attempts < c_max_attempts then o.attempts + 1 else o.attempts end,
        claimed_until = case when o.attempts < c_max_attempts then p_now + c_lease end,
        status = case when o.attempts < c_max_attempts then 'ready' else 'failed' end,
        failed_at = case when o.attempts < c_max_attempts then o.failed_at else p_now end,
        last_error = case when o.attempts < c_max_attempts then o.last_error
          else left('no result from attempt ' || o.attempts || ' (its run stopped before recording it)'
            || coalesce('; before: ' || o.last_error, ''), 1000)
        end
    from due
    where o.id = due.id
    returning o.id, o.to_email, o.template, o.payload, o.attempts, o.status
  )
  select jsonb_build_object(
    'emails', coalesce(jsonb_agg(jsonb_build_object(
        'id', t.id,
        'to_email', t.to_email,
        'template', t.template,
        'payload', t.payload,
        'attempt', t.attempts
      )) filter (where t.status = 'ready'), '[]'::jsonb),
    'abandoned', count(*) filter (where t.status = 'failed'),
    'more', count(*) >= c_batch
  )
  into v_result
  from taken t;
  return v_result;
end
$$;

-- email-dispatch, at the end of each batch: what became of each claimed row, in one statement.
-- p_outcomes: [{id, outcome, provider_id?, error?, retry_after_seconds?}] with outcome
--   sent     Resend accepted it: status sent, sent_at, provider_id;
--   retry    a retryable failure: due again after email_retry_delay, or failed when this was
--            attempt email_max_attempts; last_error kept;
--   reject   a permanent failure (4xx): failed, last_error kept;
--   release  not tried in this run: due at once, the attempt given back.
-- Only rows still ready are changed (a row some other run already finished stays as it is).
-- Returns {sent, retried, failed, released}.
create function identity.record_email_outcomes(p_outcomes jsonb, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  c_max_attempts constant integer := identity.policy('email_max_attempts');
  v_result jsonb;
begin
  if p_now is null or jsonb_typeof(p_outcomes) is distinct from 'array' then
    raise exception 'record_email_outcomes: outcomes (an array) and now are required';
  end if;
  with outcome as (
    select distinct on (x.id) x.id, x.outcome, x.provider_id, x.error, x.retry_after_seconds
    from jsonb_to_recordset(p_outcomes)
      as x(id uuid, outcome text, provider_id text, error text, retry_after_seconds integer)
    where x.id is not null and x.outcome in ('sent', 'retry', 'reject', 'release')
    order by x.id
  ), changed as (
    update identity.email_outbox o
    set status = case
          when r.outcome = 'sent' then 'sent'
          when r.outcome = 'reject' or (r.outcome = 'retry' and o.attempts >= c_max_attempts)
            then 'failed'
          else 'ready'
        end,
        sent_at = case when r.outcome = 'sent' then p_now else o.sent_at end,
        provider_id = case when r.outcome = 'sent' then left(r.provider_id, 200) else o.provider_id end,
        failed_at = case
          when r.outcome = 'reject' or (r.outcome = 'retry' and o.attempts >= c_max_attempts)
            then p_now
          else o.failed_at
        end,
        last_error = case
          when r.outcome in ('retry', 'reject') then left(coalesce(r.error, 'unknown error'), 1000)
          else o.last_error
        end,
        attempts = case when r.outcome = 'release' then greatest(o.attempts - 1, 0) else o.attempts end,
        claimed_until = null,
        next_attempt_at = case
          when r.outcome = 'release' then o.next_attempt_at
          when r.outcome = 'retry' and o.attempts < c_max_attempts
            then p_now + identity.email_retry_delay(o.attempts, r.retry_after_seconds)
        end
    from outcome r
    where o.id = r.id and o.status = 'ready'
    returning r.outcome, o.status
  )
  select jsonb_build_object(
    'sent', count(*) filter (where c.outcome = 'sent'),
    'retried', count(*) filter (where c.outcome = 'retry' and c.status = 'ready'),
    'failed', count(*) filter (where c.status = 'failed'),
    'released', count(*) filter (where c.outcome = 'release')
  )
  into v_result
  from changed c;
  return v_result;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Scheduling through pg_cron and pg_net, with the URL and key read from Vault when they fire (so
-- the key never sits in cron.job or a trigger definition, and rotates with the Vault secret).
-- ---------------------------------------------------------------------------------------------

-- One asynchronous call of email-dispatch through pg_net (sent after the transaction commits).
-- Returns pg_net's request id, or null (with a warning) while the Vault secrets are missing.
create function identity.request_email_dispatch()
returns bigint
language plpgsql
security definer -- reads Vault and calls pg_net for whichever role made rows ready
set search_path = pg_catalog, extensions
as $$
declare
  v_url text;
  v_key text;
begin
  select s.decrypted_secret into v_url from vault.decrypted_secrets s where s.name = 'email_dispatch_url';
  select s.decrypted_secret into v_key from vault.decrypted_secrets s where s.name = 'email_dispatch_api_key';
  if v_url is null or v_key is null then
    raise warning 'email dispatch is not configured: Vault secrets email_dispatch_url and email_dispatch_api_key are missing';
    return null;
  end if;
  return net.http_post(
    url := v_url,
    body := '{}'::jsonb,
    params := '{}'::jsonb,
    headers := jsonb_build_object('content-type', 'application/json', 'apikey', v_key),
    -- A run stops starting sends after 30 s; this only bounds how long pg_net waits for the answer.
    timeout_milliseconds := 60000
  );
end
$$;

-- After a statement made rows ready (a new invitation, a welcome email on confirmation): one
-- dispatch right away instead of at the next minute. Rows that were ready before (claimed,
-- retried, released by a run) ask for nothing. Best effort: a failure here is a warning, never a
-- failed signup or invitation.
create function identity.email_outbox_dispatch_soon()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, extensions
as $$
declare
  v_became_ready boolean;
begin
  if tg_op = 'INSERT' then
    select exists (select 1 from new_rows n where n.status = 'ready') into v_became_ready;
  else
    select exists (
      select 1 from new_rows n join old_rows o on o.id = n.id
      where n.status = 'ready' and o.status is distinct from 'ready'
    ) into v_became_ready;
  end if;
  if v_became_ready then
    begin
      perform identity.request_email_dispatch();
    exception when others then
      raise warning 'email dispatch request failed: %', sqlerrm;
    end;
  end if;
  return null;
end
$$;

-- Installs the cron job and the triggers where pg_cron, pg_net and Vault exist; on plain Postgres
-- it does nothing and says so. Safe to run again (cron.schedule replaces a job of the same name).
-- To stop: select cron.unschedule('email-dispatch'); and drop the two email_outbox_dispatch_soon
-- triggers.
create function identity.install_email_dispatch()
returns text
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  if to_regprocedure('cron.schedule(text,text,text)') is null
    or to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
    or to_regclass('vault.decrypted_secrets') is null then
    return 'skipped: pg_cron, pg_net or Vault is not available';
  end if;
  perform cron.schedule('email-dispatch', '* * * * *', 'select identity.request_email_dispatch()');
  drop trigger if exists email_outbox_dispatch_soon_on_insert on identity.email_outbox;
  drop trigger if exists email_outbox_dispatch_soon_on_update on identity.email_outbox;
  create trigger email_outbox_dispatch_soon_on_insert
    after insert on identity.email_outbox
    referencing new table as new_rows
    for each statement execute function identity.email_outbox_dispatch_soon();
  create trigger email_outbox_dispatch_soon_on_update
    after update on identity.email_outbox
    referencing old table as old_rows new table as new_rows
    for each statement execute function identity.email_outbox_dispatch_soon();
  return 'installed';
end
$$;

select identity.install_email_dispatch();

revoke execute on function
  identity.policy(text),
  identity.email_retry_delay(integer, integer),
  identity.claim_due_emails(timestamptz),
  identity.record_email_outcomes(jsonb, timestamptz),
  identity.request_email_dispatch(),
  identity.email_outbox_dispatch_soon(),
  identity.install_email_dispatch()
from public, anon, authenticated;
