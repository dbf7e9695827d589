-- WhatsApp Cloud API deliveries: one SQL call stores every message and applies every status of a
-- webhook delivery (whatsapp-webhook calls it once per POST).
--
-- Deliveries are at-least-once and unordered, so the function is idempotent and monotonic:
-- - a message is keyed on its wamid; delivering it again changes nothing;
-- - a status only moves a message forward in  sent < failed < delivered < read.
--   `failed` overrides `sent` (the message did not get through) but not `delivered` or `read`
--   (it reached the person's device, whatever a late failure of another device says); the
--   errors of every failed status are kept in `errors` whatever the status ends up being;
-- - a status for a wamid never seen (a message another system sent from our number) creates an
--   outbound row, so later statuses of it apply;
-- - other status values (Meta's `played`, `deleted`, …) are counted and otherwise ignored.
-- whatsapp.message (table, RLS on, no policy: nobody but the service connection reads it) is
-- created in 20261122000100_identity.sql.

-- Deleting a person sets person_id to null on their messages: index the foreign key.
create index if not exists message_person_id_idx on whatsapp.message (person_id);

alter default privileges in schema whatsapp revoke execute on functions from public;

-- The order statuses move in; null for a value that is not a delivery status.
create function whatsapp.status_rank(p_status text) returns int
language sql immutable
set search_path = pg_catalog, extensions
as $$
  select case p_status
    when 'received' then 0
    when 'sent' then 1
    when 'failed' then 2
    when 'delivered' then 3
    when 'read' then 4
  end
$$;

-- p_messages: [{ wamid, phone_number_id, wa_id, profile_name, type, text_body,
--                sent_at (unix seconds or null), errors (array or null), raw }]
-- p_statuses: [{ wamid, status, status_at (unix seconds or null), recipient_id,
--                phone_number_id, errors (array or null) }]
-- wa_id / recipient_id are WhatsApp ids (E.164 digits without '+'); the message is linked to the
-- identity.person whose phone is '+' || that id.
-- Returns { messages, messages_stored, statuses, statuses_applied, statuses_ignored,
--           outbound_created }: messages_stored counts new rows (not redeliveries),
-- statuses_applied counts rows a status created or changed.
create function whatsapp.store_delivery(p_messages jsonb, p_statuses jsonb, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_messages int := jsonb_array_length(coalesce(p_messages, '[]'::jsonb));
  v_statuses int := jsonb_array_length(coalesce(p_statuses, '[]'::jsonb));
  v_messages_stored int := 0;
  v_statuses_applied int := 0;
  v_statuses_ignored int := 0;
  v_outbound_created int := 0;
begin
  if v_messages > 0 then
    with stored as (
      insert into whatsapp.message as m (
        wamid, direction, phone_number_id, wa_id, person_id, profile_name, type, text_body,
        sent_at, status, status_at, errors, raw, created_at, updated_at
      )
      select
        i.wamid, 'inbound', i.phone_number_id, i.wa_id, p.id, i.profile_name, i.type, i.text_body,
        to_timestamp(i.sent_at), 'received', coalesce(to_timestamp(i.sent_at), p_now),
        case when jsonb_typeof(i.errors) = 'array' then i.errors end, i.raw, p_now, p_now
      from jsonb_to_recordset(p_messages) as i(
        wamid text, phone_number_id text, wa_id text, profile_name text, type text,
        text_body text, sent_at double precision, errors jsonb, raw jsonb
      )
      left join identity.person p on i.wa_id ~ '^[1-9][0-9]{6,14}$' and p.phone = '+' || i.wa_id
      where i.wamid is not null
      order by i.wamid -- a fixed lock order, so concurrent deliveries cannot deadlock
      on conflict (wamid) do nothing
      returning 1
    )
    select count(*) into v_messages_stored from stored;
  end if;

  if v_statuses > 0 then
    with incoming as (
      select s.*, whatsapp.status_rank(s.status) as rank
      from jsonb_to_recordset(p_statuses) as s(
        wamid text, status text, status_at double precision, recipient_id text,
        phone_number_id text, errors jsonb
      )
      where s.wamid is not null
    ),
    -- Several statuses of one message can arrive in one delivery, in any order: the highest wins,
    -- and the errors of all its failed statuses are kept.
    best as (
      select distinct on (wamid) wamid, status, rank, status_at, recipient_id, phone_number_id
      from incoming
      where rank >= 1
      order by wamid, rank desc, status_at desc nulls last
    ),
    failures as (
      select i.wamid, jsonb_agg(e.error) as errors
      from incoming i
      cross join lateral jsonb_array_elements(
        case when jsonb_typeof(i.errors) = 'array' then i.errors else '[]'::jsonb end
      ) as e(error)
      where i.status = 'failed'
      group by i.wamid
    ),
    applied as (
      insert into whatsapp.message as m (
        wamid, direction, phone_number_id, wa_id, person_id, status, status_at, errors,
        created_at, updated_at
      )
      select
        b.wamid, 'outbound', b.phone_number_id, b.recipient_id, p.id, b.status,
        coalesce(to_timestamp(b.status_at), p_now), f.errors, p_now, p_now
      from best b
      left join failures f on f.wamid = b.wamid
      left join identity.person p
        on b.recipient_id ~ '^[1-9][0-9]{6,14}$' and p.phone = '+' || b.recipient_id
      order by b.wamid -- a fixed lock order, so concurrent deliveries cannot deadlock
      on conflict (wamid) do update set
        status = case
          when whatsapp.status_rank(excluded.status) > whatsapp.status_rank(m.status)
          then excluded.status else m.status end,
        status_at = case
          when whatsapp.status_rank(excluded.status) > whatsapp.status_rank(m.status)
          then excluded.status_at else m.status_at end,
        errors = case
          when excluded.errors is null or coalesce(m.errors @> excluded.errors, false) then m.errors
          else coalesce(m.errors, '[]'::jsonb) || excluded.errors end,
        updated_at = excluded.updated_at
      -- Statuses describe messages we sent: an inbound row never takes one. Nothing else
      -- changes a row unless the status moves forward or brings errors not yet kept.
      where m.direction = 'outbound' and (
        whatsapp.status_rank(excluded.status) > whatsapp.status_rank(m.status)
        or (excluded.errors is not null and not coalesce(m.errors @> excluded.errors, false))
      )
      returning (xmax = 0) as created
    )
    select count(*), count(*) filter (where created)
    into v_statuses_applied, v_outbound_created
    from applied;

    select count(*) into v_statuses_ignored
    from jsonb_array_elements(p_statuses) as s(status)
    where whatsapp.status_rank(s.status ->> 'status') is null
      or whatsapp.status_rank(s.status ->> 'status') < 1;
  end if;

  return jsonb_build_object(
    'messages', v_messages,
    'messages_stored', v_messages_stored,
    'statuses', v_statuses,
    'statuses_applied', v_statuses_applied,
    'statuses_ignored', v_statuses_ignored,
    'outbound_created', v_outbound_created
  );
end
$$;

revoke execute on all functions in schema whatsapp from public, anon, authenticated;
