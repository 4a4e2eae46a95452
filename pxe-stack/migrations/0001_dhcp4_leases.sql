-- pxe-stack's DHCPv4 leases, shared by every server of a site (PgLeaseStore).
-- Applied once by PgLeaseStore::connect (table pxe_stack_migrations records which).

-- One row per address a client holds (bound), gave back (released, kept for affinity) or
-- declined (quarantined). The primary key makes an address unique per subnet and the client
-- key makes a client hold one address per subnet: no transaction can bind an address twice.
CREATE TABLE dhcp4_lease (
    subnet      text    NOT NULL,            -- '192.168.126.0/24'
    address     inet    NOT NULL,
    mac         text    NOT NULL,            -- '52:54:00:12:34:56'
    client_key  text,                        -- 'mac:52:54:..' or 'id:ff:..'; NULL when declined
    client_id   text,
    hostname    text,
    state       text    NOT NULL CHECK (state IN ('bound', 'released', 'declined')),
    expires     bigint  NOT NULL,            -- seconds since the Unix epoch
    server      text    NOT NULL,            -- which server stored this version
    version     bigint  NOT NULL,            -- from dhcp4_lease_version, for refreshes
    PRIMARY KEY (subnet, address),
    UNIQUE (subnet, client_key)
);
CREATE SEQUENCE dhcp4_lease_version;
CREATE INDEX dhcp4_lease_by_version ON dhcp4_lease (version);

-- One batch of a server's changes, in one round trip. For each entry: a removal deletes the
-- row only while it is still that client's (or lapsed); a put binds the address only when no
-- other client holds it (ON CONFLICT ... WHERE is evaluated against the newest committed row,
-- so two servers racing for one address cannot both win). Each refused put comes back: the
-- address it tried, and the row that stood in its way (the address's holder, or the client's
-- lease elsewhere; NULLs when none): the caller NAKs instead of ACKing.
CREATE FUNCTION dhcp4_commit(
    p_server text, p_now bigint,
    p_subnet text[], p_address inet[], p_put boolean[], p_mac text[], p_key text[],
    p_client_id text[], p_hostname text[], p_state text[], p_expires bigint[]
) RETURNS TABLE (
    refused inet,
    h_address inet, h_mac text, h_client_id text, h_hostname text, h_state text, h_expires bigint
) LANGUAGE plpgsql AS $$
DECLARE
    i int;
    done int;
    holder dhcp4_lease;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_address, 1), 0) LOOP
        IF NOT p_put[i] THEN
            DELETE FROM dhcp4_lease
             WHERE subnet = p_subnet[i] AND address = p_address[i]
               AND ((mac = p_mac[i] AND client_key IS NOT DISTINCT FROM p_key[i])
                    OR expires <= p_now);
            CONTINUE;
        END IF;
        BEGIN
            IF p_key[i] IS NOT NULL THEN
                -- A client keeps its address: while it holds a bound lease elsewhere, a
                -- request for another address is refused (the server NAKs, the client asks
                -- again and is offered its lease). Such a request is a late one the client
                -- gave up on, or one to a server that did not know the lease yet; moving the
                -- row would free the address the client uses. Lapsed and released rows give
                -- way.
                IF EXISTS (SELECT 1 FROM dhcp4_lease
                            WHERE subnet = p_subnet[i] AND client_key = p_key[i]
                              AND address <> p_address[i] AND state = 'bound'
                              AND expires > p_now) THEN
                    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'client holds a lease';
                END IF;
                DELETE FROM dhcp4_lease
                 WHERE subnet = p_subnet[i] AND client_key = p_key[i] AND address <> p_address[i];
            END IF;
            INSERT INTO dhcp4_lease AS l
                   (subnet, address, mac, client_key, client_id, hostname, state, expires,
                    server, version)
            VALUES (p_subnet[i], p_address[i], p_mac[i], p_key[i], p_client_id[i],
                    p_hostname[i], p_state[i], p_expires[i], p_server,
                    nextval('dhcp4_lease_version'))
            ON CONFLICT (subnet, address) DO UPDATE
               SET mac = EXCLUDED.mac, client_key = EXCLUDED.client_key,
                   client_id = EXCLUDED.client_id, hostname = EXCLUDED.hostname,
                   state = EXCLUDED.state, expires = EXCLUDED.expires,
                   server = EXCLUDED.server, version = EXCLUDED.version
             WHERE (l.mac = EXCLUDED.mac AND l.client_key IS NOT DISTINCT FROM EXCLUDED.client_key)
                OR l.expires <= p_now
                OR l.state = 'released';
            IF NOT FOUND THEN
                -- Another client holds the address: undo the move above too.
                RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'address held';
            END IF;
            done := 1;
        EXCEPTION WHEN unique_violation OR raise_exception THEN
            -- Another client holds the address, or this client holds another one that
            -- another server bound meanwhile.
            done := 0;
        END;
        IF done = 0 THEN
            SELECT * INTO holder FROM dhcp4_lease
             WHERE subnet = p_subnet[i]
               AND (address = p_address[i] OR (p_key[i] IS NOT NULL AND client_key = p_key[i]))
             ORDER BY (address = p_address[i]) DESC
             LIMIT 1;
            refused := p_address[i];
            IF FOUND THEN
                h_address := holder.address;
                h_mac := holder.mac;
                h_client_id := holder.client_id;
                h_hostname := holder.hostname;
                h_state := holder.state;
                h_expires := holder.expires;
            ELSE
                h_address := NULL;
                h_mac := NULL;
                h_client_id := NULL;
                h_hostname := NULL;
                h_state := NULL;
                h_expires := NULL;
            END IF;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
