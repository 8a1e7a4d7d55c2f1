package org.mediator.sdk;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** What needs no node: pointers, the error table, reading answers with fields unknown to this version. */
@Timeout(10)
class OfflineTest {
    @Test
    void pointersReadAndWriteTheirTextAsPythonDoes() {
        Pointer p = Pointer.parse("idc/nlst/100002?Modality=MR,CT");
        assertEquals("idc", p.source());
        assertEquals(List.of("nlst", "100002"), p.path());
        assertEquals(Map.of("Modality", List.of("CT", "MR")), p.filters());
        assertEquals("idc/nlst/100002?Modality=CT,MR", p.toString());
        Pointer odd = Pointer.of("local", "a/b", "x y", "é").with("Desc", "50%,more");
        assertEquals("local/a%2Fb/x%20y/%C3%A9?Desc=50%25%2Cmore", odd.toString());
        assertEquals(odd, Pointer.parse(odd.toString()));
        assertEquals(Map.of("source", "tcia", "path", List.of(), "filters", Map.of()),
                Pointer.parse("/tcia/").toJson());
        assertThrows(MediatorException.ValidationError.class, () -> Pointer.parse("idc/nlst?Modality"));
        assertThrows(MediatorException.ValidationError.class, () -> Pointer.parse("  "));
    }

    @Test
    void errorBodiesBecomeTheTypedErrorsOfThePythonSdk() {
        MediatorException conflict = Mediator.errorOf(409,
                "{\"error\": \"ConflictError\", \"code\": \"conflict\", \"message\": \"stale\", \"current_head\": 3}");
        assertInstanceOf(MediatorException.Conflict.class, conflict);
        assertEquals(3, ((MediatorException.Conflict) conflict).currentHead());
        assertEquals("stale", conflict.getMessage());
        // by class name when there is no code (an older node)
        assertInstanceOf(MediatorException.NotFound.class,
                Mediator.errorOf(404, "{\"error\": \"NotFound\", \"message\": \"gone\"}"));
        assertInstanceOf(MediatorException.Immutable.class,
                Mediator.errorOf(403, "{\"error\": \"ImmutableError\", \"code\": \"immutable\", \"message\": \"x\"}"));
        assertInstanceOf(MediatorException.PermissionDenied.class,
                Mediator.errorOf(403, "{\"code\": \"immutable\", \"message\": \"x\"}"));
        assertInstanceOf(MediatorException.ArchiveUnreachable.class,
                Mediator.errorOf(502, "{\"code\": \"archive_unreachable\", \"message\": \"x\"}"));
        assertInstanceOf(MediatorException.SourceError.class,
                Mediator.errorOf(502, "{\"code\": \"archive_unreachable\", \"message\": \"x\"}"));
        assertInstanceOf(MediatorException.ClusterUnavailable.class,
                Mediator.errorOf(503, "{\"code\": \"cluster_unavailable\", \"message\": \"x\"}"));
        MediatorException problems = Mediator.errorOf(400, "{\"error\": \"ValidationError\", \"code\": \"validation\","
                + " \"message\": \"incomplete\", \"detail\": {\"title\": \"a title is required\"}}");
        assertEquals(Map.of("title", "a title is required"),
                ((MediatorException.MetadataProblems) problems).problems());
        // a kind this version does not know: the base class, with the message
        MediatorException unknown = Mediator.errorOf(400, "{\"code\": \"brand_new\", \"message\": \"new\"}");
        assertEquals(MediatorException.class, unknown.getClass());
        assertEquals("new", unknown.getMessage());
        assertInstanceOf(MediatorException.ValidationError.class, Mediator.errorOf(422, "{\"detail\": []}"));
        assertInstanceOf(MediatorException.NodeUnreachable.class, Mediator.errorOf(401, "{\"message\": \"no\"}"));
        assertTrue(Mediator.errorOf(500, "<html>").getMessage().startsWith("HTTP 500: <html>"));
        assertEquals("ConflictError", MediatorException.knownCodes().get("conflict"));
    }

    @Test
    void answersWithFieldsThisVersionDoesNotKnowAreRead() {
        String json = "{\"id\": \"" + "a".repeat(32) + "\", \"name\": \"n\", \"description\": \"\", \"owner\": \"k\","
                + " \"owner_name\": \"Ada\", \"editors\": [], \"visibility\": \"cluster\", \"forked_from\": null,"
                + " \"following\": true, \"head\": 2, \"published\": [1], \"leaves\": 5, \"size\": 12345678901,"
                + " \"colour\": \"teal\", \"nested\": {\"x\": [1, 2]}}";
        Models.SetModel rs = Mediator.READ.fromJson(json, Models.SetModel.class);
        assertEquals("Ada", rs.ownerName());
        assertEquals(2, rs.head());
        assertEquals(12345678901L, rs.size());
        assertTrue(rs.following());
        assertNull(rs.update()); // a field an older node leaves out
        Models.UpdateCheckModel check = Mediator.READ.fromJson(
                "{\"set_id\": \"s\", \"new\": true, \"error\": \"\", \"line\": \"l\"}", Models.UpdateCheckModel.class);
        assertTrue(check.isNew());
        Models.SourceOptionModel option = Mediator.READ.fromJson(
                "{\"name\": \"base_url\", \"default\": \"https://x\"}", Models.SourceOptionModel.class);
        assertEquals("https://x", option.defaultValue());
        // what core.endpoint.token_proof("t", "00") answers
        assertEquals("b94c077342664e4183c35e37e0507b0c6520ebeb31d0c4594378bc7470e03409", Mediator.tokenProof("t", "00"));
    }
}
