//! Which top-level arguments to differentiate (JAX's `argnums`), typed: for a
//! function of a tuple, `Arg::<1>` selects the second element and
//! `(Arg::<0>, Arg::<2>)` the first and third; the gradient has the selected
//! elements' types.

use arrayjit_trace::Tree;

/// Selects the differentiated elements of a tuple argument.
pub trait Argnums<In> {
    /// The type of the gradient: the selected elements.
    type Grads: Tree;
    /// The selected positions, increasing.
    fn positions(&self) -> Vec<usize>;
    /// Picks the selected elements out of a full gradient.
    fn select(&self, g: In) -> Self::Grads;
}

/// Selects tuple element `I`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Arg<const I: usize>;

impl<T0: Tree> Argnums<(T0,)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0,)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree> Argnums<(T0, T1)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0, T1)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree> Argnums<(T0, T1)> for Arg<1> {
    type Grads = T1;
    fn positions(&self) -> Vec<usize> {
        vec![1]
    }
    fn select(&self, g: (T0, T1)) -> T1 {
        g.1
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0, T1, T2)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for Arg<1> {
    type Grads = T1;
    fn positions(&self) -> Vec<usize> {
        vec![1]
    }
    fn select(&self, g: (T0, T1, T2)) -> T1 {
        g.1
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for Arg<2> {
    type Grads = T2;
    fn positions(&self) -> Vec<usize> {
        vec![2]
    }
    fn select(&self, g: (T0, T1, T2)) -> T2 {
        g.2
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for Arg<1> {
    type Grads = T1;
    fn positions(&self) -> Vec<usize> {
        vec![1]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> T1 {
        g.1
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for Arg<2> {
    type Grads = T2;
    fn positions(&self) -> Vec<usize> {
        vec![2]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> T2 {
        g.2
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for Arg<3> {
    type Grads = T3;
    fn positions(&self) -> Vec<usize> {
        vec![3]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> T3 {
        g.3
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree> Argnums<(T0, T1, T2, T3, T4)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree> Argnums<(T0, T1, T2, T3, T4)> for Arg<1> {
    type Grads = T1;
    fn positions(&self) -> Vec<usize> {
        vec![1]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4)) -> T1 {
        g.1
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree> Argnums<(T0, T1, T2, T3, T4)> for Arg<2> {
    type Grads = T2;
    fn positions(&self) -> Vec<usize> {
        vec![2]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4)) -> T2 {
        g.2
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree> Argnums<(T0, T1, T2, T3, T4)> for Arg<3> {
    type Grads = T3;
    fn positions(&self) -> Vec<usize> {
        vec![3]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4)) -> T3 {
        g.3
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree> Argnums<(T0, T1, T2, T3, T4)> for Arg<4> {
    type Grads = T4;
    fn positions(&self) -> Vec<usize> {
        vec![4]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4)) -> T4 {
        g.4
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<0> {
    type Grads = T0;
    fn positions(&self) -> Vec<usize> {
        vec![0]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T0 {
        g.0
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<1> {
    type Grads = T1;
    fn positions(&self) -> Vec<usize> {
        vec![1]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T1 {
        g.1
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<2> {
    type Grads = T2;
    fn positions(&self) -> Vec<usize> {
        vec![2]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T2 {
        g.2
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<3> {
    type Grads = T3;
    fn positions(&self) -> Vec<usize> {
        vec![3]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T3 {
        g.3
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<4> {
    type Grads = T4;
    fn positions(&self) -> Vec<usize> {
        vec![4]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T4 {
        g.4
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree, T4: Tree, T5: Tree> Argnums<(T0, T1, T2, T3, T4, T5)> for Arg<5> {
    type Grads = T5;
    fn positions(&self) -> Vec<usize> {
        vec![5]
    }
    fn select(&self, g: (T0, T1, T2, T3, T4, T5)) -> T5 {
        g.5
    }
}

impl<T0: Tree, T1: Tree> Argnums<(T0, T1)> for (Arg<0>, Arg<1>) {
    type Grads = (T0, T1);
    fn positions(&self) -> Vec<usize> {
        vec![0, 1]
    }
    fn select(&self, g: (T0, T1)) -> (T0, T1) {
        (g.0, g.1)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for (Arg<0>, Arg<1>) {
    type Grads = (T0, T1);
    fn positions(&self) -> Vec<usize> {
        vec![0, 1]
    }
    fn select(&self, g: (T0, T1, T2)) -> (T0, T1) {
        (g.0, g.1)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for (Arg<0>, Arg<2>) {
    type Grads = (T0, T2);
    fn positions(&self) -> Vec<usize> {
        vec![0, 2]
    }
    fn select(&self, g: (T0, T1, T2)) -> (T0, T2) {
        (g.0, g.2)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree> Argnums<(T0, T1, T2)> for (Arg<1>, Arg<2>) {
    type Grads = (T1, T2);
    fn positions(&self) -> Vec<usize> {
        vec![1, 2]
    }
    fn select(&self, g: (T0, T1, T2)) -> (T1, T2) {
        (g.1, g.2)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<0>, Arg<1>) {
    type Grads = (T0, T1);
    fn positions(&self) -> Vec<usize> {
        vec![0, 1]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T0, T1) {
        (g.0, g.1)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<0>, Arg<2>) {
    type Grads = (T0, T2);
    fn positions(&self) -> Vec<usize> {
        vec![0, 2]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T0, T2) {
        (g.0, g.2)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<0>, Arg<3>) {
    type Grads = (T0, T3);
    fn positions(&self) -> Vec<usize> {
        vec![0, 3]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T0, T3) {
        (g.0, g.3)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<1>, Arg<2>) {
    type Grads = (T1, T2);
    fn positions(&self) -> Vec<usize> {
        vec![1, 2]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T1, T2) {
        (g.1, g.2)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<1>, Arg<3>) {
    type Grads = (T1, T3);
    fn positions(&self) -> Vec<usize> {
        vec![1, 3]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T1, T3) {
        (g.1, g.3)
    }
}

impl<T0: Tree, T1: Tree, T2: Tree, T3: Tree> Argnums<(T0, T1, T2, T3)> for (Arg<2>, Arg<3>) {
    type Grads = (T2, T3);
    fn positions(&self) -> Vec<usize> {
        vec![2, 3]
    }
    fn select(&self, g: (T0, T1, T2, T3)) -> (T2, T3) {
        (g.2, g.3)
    }
}
