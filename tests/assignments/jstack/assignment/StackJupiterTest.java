import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

// JUnit 5 (Jupiter) tests beside the JUnit 4 ones: both run on the JUnit Platform.
class StackJupiterTest {
    @Test
    void popsInReverse() {
        IntStack s = new IntStack();
        s.push(1);
        s.push(2);
        s.push(3);
        assertEquals(3, s.pop());
        assertEquals(2, s.pop());
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 5, -7})
    void popGivesBackWhatWasPushed(int x) {
        IntStack s = new IntStack();
        s.push(x);
        assertEquals(x, s.pop());
    }
}
