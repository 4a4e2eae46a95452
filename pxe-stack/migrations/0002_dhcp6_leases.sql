-- pxe-stack's DHCPv6 leases, shared by every server of a site (PgLeaseStore), with the same
-- rules as dhcp4_lease: an address unique per link, one address per host (MAC) per link, and
-- a put that only wins when no other host holds the address. The host is its MAC, not its
-- DUID: firmware, iPXE and the installer each send their own DUID and keep one address.

CREATE TABLE dhcp6_lease (
    link        text    NOT NULL,            -- 'fd00:126::/64'
    address     inet    NOT NULL,
    mac         text    NOT NULL,
    client_key  text,                        -- 'mac:52:54:..'; NULL when declined
    duid        text    NOT NULL,            -- the DUID the host last used, hex
    iaid        bigint  NOT NULL,
    state       text    NOT NULL CHECK (state IN ('bound', 'released', 'declined')),
    expires     bigint  NOT NULL,
    server      text    NOT NULL,
    version     bigint  NOT NULL,
    PRIMARY KEY (link, address),
    UNIQUE (link, client_key)
);
CREATE SEQUENCE dhcp6_lease_version;
CREATE INDEX dhcp6_lease_by_version ON dhcp6_lease (version);

CREATE FUNCTION dhcp6_commit(
    p_server text, p_now bigint,
    p_link text[], p_address inet[], p_put boolean[], p_mac text[], p_key text[],
    p_duid text[], p_iaid bigint[], p_state text[], p_expires bigint[]
) RETURNS TABLE (
    refused inet,
    h_address inet, h_mac text, h_duid text, h_iaid bigint, h_state text, h_expires bigint
) LANGUAGE plpgsql AS $$
DECLARE
    i int;
    done int;
    holder dhcp6_lease;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_address, 1), 0) LOOP
        IF NOT p_put[i] THEN
            DELETE FROM dhcp6_lease
             WHERE link = p_link[i] AND address = p_address[i]
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
                IF EXISTS (SELECT 1 FROM dhcp6_lease
                            WHERE link = p_link[i] AND client_key = p_key[i]
                              AND address <> p_address[i] AND state = 'bound'
                              AND expires > p_now) THEN
                    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'client holds a lease';
                END IF;
                DELETE FROM dhcp6_lease
                 WHERE link = p_link[i] AND client_key = p_key[i] AND address <> p_address[i];
            END IF;
            INSERT INTO dhcp6_lease AS l
                   (link, address, mac, client_key, duid, iaid, state, expires, server, version)
            VALUES (p_link[i], p_address[i], p_mac[i], p_key[i], p_duid[i], p_iaid[i],
                    p_state[i], p_expires[i], p_server, nextval('dhcp6_lease_version'))
            ON CONFLICT (link, address) DO UPDATE
               SET mac = EXCLUDED.mac, client_key = EXCLUDED.client_key,
                   duid = EXCLUDED.duid, iaid = EXCLUDED.iaid,
                   state = EXCLUDED.state, expires = EXCLUDED.expires,
                   server = EXCLUDED.server, version = EXCLUDED.version
             WHERE (l.mac = EXCLUDED.mac AND l.client_key IS NOT DISTINCT FROM EXCLUDED.client_key)
                OR l.expires <= p_now
                OR l.state = 'released';
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'address held';
            END IF;
            done := 1;
        EXCEPTION WHEN unique_violation OR raise_exception THEN
            done := 0;
        END;
        IF done = 0 THEN
            SELECT * INTO holder FROM dhcp6_lease
             WHERE link = p_link[i]
               AND (address = p_address[i] OR (p_key[i] IS NOT NULL AND client_key = p_key[i]))
             ORDER BY (address = p_address[i]) DESC
             LIMIT 1;
            refused := p_address[i];
            IF FOUND THEN
                h_address := holder.address;
                h_mac := holder.mac;
                h_duid := holder.duid;
                h_iaid := holder.iaid;
                h_state := holder.state;
                h_expires := holder.expires;
            ELSE
                h_address := NULL;
                h_mac := NULL;
                h_duid := NULL;
                h_iaid := NULL;
                h_state := NULL;
                h_expires := NULL;
            END IF;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
