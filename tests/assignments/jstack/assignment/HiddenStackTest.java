import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;

import org.junit.Test;

// SECRET-HIDDEN-TEST-MARKER
public class HiddenStackTest {
    @Test
    public void popOnEmptyThrows() {
        assertThrows(IllegalStateException.class, () -> new IntStack().pop());
    }

    @Test
    public void emptySizeIsZero() {
        assertEquals(0, new IntStack().size());
    }
}
