import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.configuration.ssl.ClientAuth;
import org.neo4j.configuration.ssl.SslPolicyConfig;
import org.neo4j.configuration.ssl.SslPolicyScope;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Embedded Neo4j (Community) for mas-devstack: Bolt on one address only (127.0.0.1, or the
 * simulated host's), auth on, no HTTP.
 *
 * <p>Usage: {@code java -cp <classes>:<lib>/* Launcher <home-dir> <bolt-port> <pagecache-mb>
 * <ready-file> <address> <tls-dir>}: with a {@code <tls-dir>} holding {@code public.crt} and
 * {@code private.key} (PKCS#8 PEM), Bolt requires TLS ({@code server.bolt.tls_level=REQUIRED},
 * the {@code dbms.ssl.policy.bolt.*} policy, no client certificates); {@code -} means no TLS
 * (the TLS-cost benchmark's plaintext arm). The password comes from the environment variable {@code MAS_NEO4J_PASSWORD},
 * never from the command line (which {@code ps} shows). Once the password is set it writes its
 * PID to the ready file: mas-devstack's authenticated probe waits for that file, so it never
 * knocks with a password the server does not know yet (Neo4j locks a user out for a while
 * after repeated failures). Runs until SIGTERM, then shuts the DBMS down cleanly.
 */
public final class Launcher {
    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: Launcher <home-dir> <bolt-port> <pagecache-mb> <ready-file>"
                    + " <address> <tls-dir|->");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        long pageCacheMb = Long.parseLong(args[2]);
        Path ready = Path.of(args[3]).toAbsolutePath();
        Files.deleteIfExists(ready);
        String password = System.getenv("MAS_NEO4J_PASSWORD");
        if (password == null || password.length() < 8) {
            System.err.println("MAS_NEO4J_PASSWORD must be set (8 characters or more)");
            System.exit(2);
        }
        String address = args[4];
        SocketAddress bolt = new SocketAddress(address, port);

        DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(home);
        if (!args[5].equals("-")) {
            Path tls = Path.of(args[5]).toAbsolutePath();
            SslPolicyConfig policy = SslPolicyConfig.forScope(SslPolicyScope.BOLT);
            builder.setConfig(policy.enabled, true)
                    .setConfig(policy.base_directory, tls)
                    .setConfig(policy.private_key, tls.resolve("private.key"))
                    .setConfig(policy.public_certificate, tls.resolve("public.crt"))
                    .setConfig(policy.trusted_dir, tls.resolve("trusted"))
                    .setConfig(policy.revoked_dir, tls.resolve("revoked"))
                    .setConfig(policy.client_auth, ClientAuth.NONE)
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.REQUIRED);
        }
        DatabaseManagementService dbms = builder
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, bolt)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                // Bolt waits 5 s twice on shutdown by default; a dev stack restarts often.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time,
                        Duration.ofSeconds(1))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time,
                        Duration.ofSeconds(1))
                .build();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("mas-devstack: shutting Neo4j down");
            try {
                Files.deleteIfExists(ready);
            } catch (java.io.IOException e) {
                System.err.println("mas-devstack: cannot remove " + ready + ": " + e);
            }
            dbms.shutdown();
            stopped.countDown();
        }, "mas-devstack-shutdown"));

        // Until this runs, the generated password does not work, so the readiness check of
        // mas-devstack (an authenticated RETURN 1) cannot pass early.
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
            System.out.println("mas-devstack: password of user neo4j set");
        } catch (RuntimeException e) {
            // On a restart the password is already this one; Neo4j refuses to "change" it.
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                e.printStackTrace();
                System.exit(1); // the shutdown hook stops the DBMS; a JVM left running would hang
            }
            System.out.println("mas-devstack: password of user neo4j already set");
        }
        Files.writeString(ready, ProcessHandle.current().pid() + "\n");
        String scheme = args[5].equals("-") ? "bolt://" : "bolt+s://";
        System.out.println("mas-devstack: Neo4j ready on " + scheme + address + ":" + port);
        stopped.await();
    }
}
